"""Players: media units that play synthesised speech or an audio file (VoxEngine ``Player``).

A :class:`Player` emits one 20 ms frame per tick of the shared media clock
(:func:`gateway.media.clock.get_media_clock`), so whatever it is sent to (a call, a
conference, a recorder) gets audio at real time, and ``pause``/``resume``/markers are
exact to a frame. Its audio comes from an asynchronous source of PCM16 chunks:

* :func:`tts_source`: a TTS provider's stream (espeak-ng by default); with progressive
  playback the player starts speaking on the first chunk, before synthesis ends;
* :func:`url_source`: a WAV/MP3/OGG file from http(s) or a local path, downloaded with a
  size limit and a timeout (httpx) and decoded with PyAV in a worker thread.

Events follow VoxEngine's ``PlayerEvents`` (each with ``player``): ``Created``,
``PlaybackReady`` (all audio is available), ``Started`` (first frame out),
``PlaybackMarkerReached`` (``offset``), ``PlaybackBuffering`` (the source fell behind),
``PlaybackFinished`` (``error`` when it failed), ``Error`` (``error``) and ``Stopped``
(after :meth:`Player.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from gateway.media.clock import get_media_clock
from gateway.media.format import FRAME_MS, AudioFormat, AudioFrame, Encoding
from gateway.runtime.context import current_session, spawn_owned
from gateway.runtime.events import ErrorSink, EventTarget
from gateway.runtime.media_unit import MediaUnit

log = logging.getLogger(__name__)

#: Players one session may have alive at once (VoxEngine's limit).
MAX_PLAYERS_PER_SESSION = 10
#: Largest audio file a URL player downloads (bytes).
MAX_URL_BYTES = 16 * 1024 * 1024
#: Seconds a URL player's download may take in total.
URL_TIMEOUT_S = 20.0
#: What URL players decode to: PCM16 mono 16 kHz.
URL_FORMAT = AudioFormat(Encoding.PCM16, 16000)


class PlayerEvents:
    """VoxEngine ``PlayerEvents`` names (payloads: see the module docstring)."""

    Created = "PlayerEvents.Created"
    PlaybackReady = "PlayerEvents.PlaybackReady"
    Started = "PlayerEvents.Started"
    PlaybackMarkerReached = "PlayerEvents.PlaybackMarkerReached"
    PlaybackBuffering = "PlayerEvents.PlaybackBuffering"
    PlaybackFinished = "PlayerEvents.PlaybackFinished"
    Error = "PlayerEvents.Error"
    Stopped = "PlayerEvents.Stopped"


class PlayerError(RuntimeError):
    """A player could not be created or its audio could not be fetched or decoded."""


def live_players(session: Any) -> list[Player]:
    """The players of ``session`` that have not finished or stopped."""
    return [u for u in getattr(session, "units", ()) if isinstance(u, Player) and u.active]


class Player(MediaUnit, EventTarget):
    """Plays PCM16 audio from ``source`` in real time, one 20 ms frame per clock tick.

    Args:
        source: a function returning an async iterator of PCM16 LE mono chunks in ``fmt``.
        fmt: the source's format (PCM16 at any rate).
        loop: start over at the end (the source is read once and kept).
        progressive: start playing on the first chunk; False waits for all of it.
        paused: create paused (``resume()`` starts it).
        owner: the session (default: the one running now); the player counts against
            its :data:`MAX_PLAYERS_PER_SESSION` and is stopped when it ends.

    Raises:
        PlayerError: the session already has :data:`MAX_PLAYERS_PER_SESSION` players.
    """

    def __init__(self, source: Callable[[], AsyncIterator[bytes]], fmt: AudioFormat, *,
                 loop: bool = False, progressive: bool = True, paused: bool = False,
                 owner: ErrorSink | None = None) -> None:
        session = owner if owner is not None else current_session.get(None)
        if session is not None and len(live_players(session)) >= MAX_PLAYERS_PER_SESSION:
            raise PlayerError(f"player limit reached: {MAX_PLAYERS_PER_SESSION} players "
                              "per session; stop one first")
        MediaUnit.__init__(self)
        EventTarget.__init__(self, session)
        if fmt.encoding.is_g711:
            raise ValueError("players take PCM16 sources")
        self.output_format = fmt
        self._id = uuid.uuid4().hex
        self._audio = source
        self.loop = bool(loop)
        self.progressive = bool(progressive)
        self._paused = bool(paused)
        self._pcm = bytearray()
        self._pos = 0  # bytes of _pcm played
        self._frame = fmt.frame_bytes(FRAME_MS)
        self._done = False  # source finished
        self._started = False
        self._buffering = False
        self._active = True
        self._played_frames = 0
        self._markers: list[int] = []
        self._clock = get_media_clock()
        self._tick_handle: int | None = self._clock.subscribe(self._tick)
        register = getattr(session, "register_unit", None)
        if callable(register):
            register(self)
        self._session = session
        self._feeder = spawn_owned(session, self._feed())
        self.dispatch(PlayerEvents.Created, player=self)

    # -- VoxEngine API ------------------------------------------------------------
    def id(self) -> str:
        """The player's id."""
        return self._id

    @property
    def active(self) -> bool:
        """True until the player finished, failed or was stopped."""
        return self._active

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio played (pauses excluded; restarts at 0 on a loop)."""
        return round(self.output_format.duration_ms(self._pos))

    @property
    def duration_ms(self) -> int | None:
        """Length of the audio in ms once the source is complete, else None."""
        return round(self.output_format.duration_ms(len(self._pcm))) if self._done else None

    def pause(self) -> None:
        """Pause playback (nothing is sent until :meth:`resume`)."""
        self._paused = True

    def resume(self) -> None:
        """Resume after :meth:`pause`."""
        self._paused = False

    def add_marker(self, offset: int) -> None:
        """Fire ``PlaybackMarkerReached`` with ``offset`` when playback reaches ``offset``
        ms from the start (positive) or from the end (negative)."""
        self._markers.append(int(offset))

    def stop(self) -> None:
        """Stop playback for good: ``Stopped`` fires, every route is dropped."""
        if not self._active:
            return
        self._end()
        self.dispatch(PlayerEvents.Stopped, player=self)

    async def close(self) -> None:
        """Stop without events (the session ends)."""
        if self._active:
            self._end()

    def __repr__(self) -> str:
        state = "active" if self._active else "ended"
        return f"<Player {self._id[:8]} {state} {self.position_ms} ms>"

    # -- internals ------------------------------------------------------------------
    async def _feed(self) -> None:
        try:
            async with contextlib.aclosing(self._audio()) as chunks:
                async for chunk in chunks:
                    if not self._active:
                        return
                    self._pcm += chunk
            self._done = True
            if self._active:
                self.dispatch(PlayerEvents.PlaybackReady, player=self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc) or type(exc).__name__
            log.warning("player %s failed: %s", self._id[:8], message)
            log_line = getattr(self._session, "log_line", None)
            if callable(log_line):
                log_line(f"player {self._id[:8]} failed: {message}", logging.WARNING)
            if self._active:
                self._end()
                self.dispatch(PlayerEvents.Error, player=self, error=message)
                self.dispatch(PlayerEvents.PlaybackFinished, player=self, error=message)

    def _tick(self) -> None:
        if not self._active or self._paused:
            return
        if not self._started and not self.progressive and not self._done:
            return
        frame = bytes(self._pcm[self._pos:self._pos + self._frame])
        if len(frame) < self._frame:
            if not self._done:
                if self._started and not self._buffering:
                    self._buffering = True
                    self.dispatch(PlayerEvents.PlaybackBuffering, player=self)
                return
            if frame:  # the last, short frame: pad with silence
                frame += bytes(self._frame - len(frame))
            elif self.loop and self._pcm:
                self._pos = 0
                frame = bytes(self._pcm[:self._frame]).ljust(self._frame, b"\0")
            else:
                self._finish()
                return
        self._buffering = False
        self._pos += len(frame)
        if not self._started:
            self._started = True
            self.dispatch(PlayerEvents.Started, player=self)
        self._emit(AudioFrame(frame, self.output_format))
        self._check_markers()
        if not self.loop and self._pos >= 1 << 20:  # drop what was played
            del self._pcm[:self._pos]
            self._pos = 0

    def _check_markers(self) -> None:
        if not self._markers:
            return
        pos = self.position_ms
        total = self.duration_ms
        for offset in list(self._markers):
            at = offset if offset >= 0 else (None if total is None else total + offset)
            if at is not None and pos >= at:
                self._markers.remove(offset)
                self.dispatch(PlayerEvents.PlaybackMarkerReached, player=self, offset=offset)

    def _finish(self) -> None:
        self._end()
        self.dispatch(PlayerEvents.PlaybackFinished, player=self)

    def _end(self) -> None:
        self._active = False
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None
        if not self._feeder.done() and self._feeder is not asyncio.current_task():
            self._feeder.cancel()
        self.stop_all_media()


# -- sources ------------------------------------------------------------------------
def tts_source(provider: Any, text: str, voice: str | None = None,
               ) -> Callable[[], AsyncIterator[bytes]]:
    """A player source speaking ``text`` with a :class:`gateway.speech.TTSProvider`."""

    def start() -> AsyncIterator[bytes]:
        return provider.synthesize(str(text), voice=voice)

    return start


def url_source(url: str, *, max_bytes: int = MAX_URL_BYTES, timeout_s: float = URL_TIMEOUT_S,
               fmt: AudioFormat = URL_FORMAT) -> Callable[[], AsyncIterator[bytes]]:
    """A player source for a WAV/MP3/OGG file at ``url`` (http, https or a local path).

    The download is refused past ``max_bytes`` and abandoned after ``timeout_s``; the
    file is decoded with PyAV in a worker thread to PCM16 mono at ``fmt``'s rate.
    """

    async def start() -> AsyncIterator[bytes]:
        data = await fetch(url, max_bytes=max_bytes, timeout_s=timeout_s)
        pcm = await asyncio.to_thread(decode_audio, data, fmt.sample_rate, url)
        yield pcm

    return start


async def fetch(url: str, *, max_bytes: int = MAX_URL_BYTES,
                timeout_s: float = URL_TIMEOUT_S) -> bytes:
    """The bytes at ``url`` (http/https, ``file://`` or a path).

    Raises:
        PlayerError: not found, HTTP error, too large, or too slow (the message says which).
    """
    if url.startswith(("http://", "https://")):
        import httpx

        try:
            async with asyncio.timeout(timeout_s):
                async with httpx.AsyncClient(follow_redirects=True, timeout=timeout_s) as client:
                    async with client.stream("GET", url) as resp:
                        if resp.status_code != 200:
                            raise PlayerError(f"GET {url}: HTTP {resp.status_code}")
                        size = int(resp.headers.get("content-length") or 0)
                        if size > max_bytes:
                            raise PlayerError(f"{url} is {size} bytes; the limit is {max_bytes}")
                        body = bytearray()
                        async for chunk in resp.aiter_bytes():
                            body += chunk
                            if len(body) > max_bytes:
                                raise PlayerError(f"{url} is larger than the {max_bytes}-byte "
                                                  "limit")
                        return bytes(body)
        except TimeoutError:
            raise PlayerError(f"downloading {url} took longer than {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise PlayerError(f"GET {url} failed: {exc!r}") from exc
    path = Path(url.removeprefix("file://"))

    def read() -> bytes:
        if not path.is_file():
            raise PlayerError(f"no such file: {path}")
        if path.stat().st_size > max_bytes:
            raise PlayerError(f"{path} is {path.stat().st_size} bytes; the limit is {max_bytes}")
        return path.read_bytes()

    return await asyncio.to_thread(read)


def decode_audio(data: bytes, rate: int, name: str = "audio") -> bytes:
    """Decode a WAV/MP3/OGG (anything FFmpeg reads) to PCM16 LE mono at ``rate`` Hz.
    Blocking: run it in a worker thread.

    Raises:
        PlayerError: not an audio file FFmpeg can decode.
    """
    import av

    out = bytearray()
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise PlayerError(f"{name}: no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            for frame in container.decode(audio=0):
                for res in resampler.resample(frame):
                    out += bytes(res.planes[0])[:res.samples * 2]
            for res in resampler.resample(None):
                out += bytes(res.planes[0])[:res.samples * 2]
    except PlayerError:
        raise
    except Exception as exc:  # av.error.* for garbage input
        raise PlayerError(f"{name}: cannot decode audio ({exc})") from exc
    if not out:
        raise PlayerError(f"{name}: no audio decoded")
    return bytes(out)
