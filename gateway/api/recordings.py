"""Recording download: ``GET /records/{record_id}`` (Voximplant's ``record_url``).

``record_id`` is either the number GetCallHistory lists (RecordType ``record_id``) or
the key in the record's URL (``record_url``, the ``url`` of ``CallEvents.RecordStarted``
and ``RecorderEvents.Started``). The file is served with the same authentication as
``platform_api`` and the session logs (``account_id`` + ``api_key`` parameters, or a
service-account JWT in ``Authorization: Bearer``; a failure is HTTP 401 with the platform
error body), and only to the account it belongs to: any other account gets the same 404
as an unknown record. A recording appears once it has stopped (``RecordStopped``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from gateway.api.auth import Authenticator
from gateway.api.logs import reader
from gateway.api.responses import ERROR_BODY
from gateway.settings import Settings
from gateway.store import Store

#: Content type of each recording format.
MEDIA_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def recording_file(recordings_dir: str | Path, relative: str) -> Path | None:
    """``relative`` (as stored) inside ``recordings_dir``, or None when it would leave it."""
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return Path(recordings_dir).joinpath(*rel.parts)


def build_router(store: Store, settings: Settings, authenticator: Authenticator) -> APIRouter:
    """The ``/records/{record_id}`` route, authenticated like ``platform_api``."""
    router = APIRouter(tags=["sessions"])

    error = {"application/json": {"schema": ERROR_BODY}}
    audio = {t: {"schema": {"type": "string", "format": "binary"}}
             for t in MEDIA_TYPES.values()}
    text = {"text/plain": {"schema": {"type": "string"}}}

    @router.get("/records/{record_id}", summary="Download a recording (WAV or MP3)",
                response_class=Response,
                responses={200: {"description": "The recording", "content": audio},
                           400: {"description": "Malformed parameters", "content": error},
                           401: {"description": "Authorization failed", "content": error},
                           404: {"description": "No such recording in this account",
                                 "content": text}})
    async def download_record(request: Request, record_id: str) -> Response:
        principal = await reader(request, store, authenticator)
        if isinstance(principal, Response):
            return principal
        record = await store.get_recording(principal.account.account_id, record_id)
        path = None if record is None else recording_file(settings.recordings_dir, record.path)
        if record is None or path is None or not await asyncio.to_thread(path.is_file):
            return Response(b"recording not found\n", status_code=404, media_type="text/plain")
        ext = record.format if record.format in MEDIA_TYPES else "wav"
        return FileResponse(path, media_type=MEDIA_TYPES[ext],
                            filename=f"{record.record_key}.{ext}")

    return router
