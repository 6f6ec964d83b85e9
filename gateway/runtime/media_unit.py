"""Media units and the routes between them (ARCHITECTURE.md, "The media path").

Every object that carries audio is a :class:`MediaUnit`: calls, players, Voice AI
clients. ``a.send_media_to(b)`` routes a's audio into b. A unit receives one
stream at a time: a new source replaces the old one. The route edge converts the
format only when source and sink differ; same-law G.711 passes through untouched.
"""

from __future__ import annotations

import logging

from gateway.media.convert import FormatConverter
from gateway.media.format import AudioFormat, AudioFrame

log = logging.getLogger(__name__)


class MediaUnit:
    """Base class of everything that sends or receives audio.

    Subclasses set :attr:`output_format` (what they emit) and :attr:`input_format`
    (what they want to receive), call :meth:`_emit` with frames in their output
    format, and override :meth:`_on_media` to consume frames, which always arrive
    already converted to :attr:`input_format`.
    """

    #: Format of frames this unit emits (None: emits nothing).
    output_format: AudioFormat | None = None
    #: Format of frames this unit wants to receive (None: receives nothing).
    input_format: AudioFormat | None = None

    def __init__(self) -> None:
        self._routes: dict[MediaUnit, FormatConverter] = {}
        self._source: MediaUnit | None = None

    # -- routing -------------------------------------------------------
    def send_media_to(self, sink: MediaUnit) -> None:
        """Route this unit's audio into ``sink``; ``sink``'s previous source is replaced.

        Raises:
            TypeError: ``sink`` is not a media unit.
        """
        if not isinstance(sink, MediaUnit):
            raise TypeError(f"send_media_to expects a media unit, got {type(sink).__name__}")
        old = sink._source
        if old is self:
            return
        if old is not None:
            old.stop_media_to(sink)
        sink._source = self
        self._routes[sink] = self._make_route(sink)
        sink._source_attached(self)

    def stop_media_to(self, sink: MediaUnit) -> None:
        """Stop routing audio into ``sink``; a no-op when no such route exists."""
        if self._routes.pop(sink, None) is not None and sink._source is self:
            sink._source = None
            sink._source_detached(self)

    def stop_all_media(self) -> None:
        """Drop every route into and out of this unit (used when it ends)."""
        for sink in list(self._routes):
            self.stop_media_to(sink)
        if self._source is not None:
            self._source.stop_media_to(self)

    @property
    def media_source(self) -> MediaUnit | None:
        """The unit currently sending audio to this one."""
        return self._source

    @property
    def media_sinks(self) -> list[MediaUnit]:
        """Units this one currently sends audio to."""
        return list(self._routes)

    def _make_route(self, sink: MediaUnit) -> FormatConverter:
        src_fmt = self.output_format
        dst_fmt = sink.input_format
        if src_fmt is None or dst_fmt is None:
            raise TypeError(
                f"{type(self).__name__} -> {type(sink).__name__}: no audio format to route"
            )
        return FormatConverter(src_fmt, dst_fmt)

    def _formats_changed(self) -> None:
        """Rebuild the routes touching this unit after its formats changed."""
        for sink in list(self._routes):
            self._routes[sink] = self._make_route(sink)
        src = self._source
        if src is not None and self in src._routes:
            src._routes[self] = src._make_route(self)

    # -- data ----------------------------------------------------------
    def _emit(self, frame: AudioFrame) -> None:
        """Send one frame (in :attr:`output_format`) to every sink."""
        for sink, conv in self._routes.items():
            try:
                out = frame if conv.passthrough else AudioFrame(conv.convert(frame.data), conv.dst)
                sink._on_media(out)
            except Exception:  # one bad sink must not stop the others
                log.exception("media route %s -> %s failed", self, sink)

    def _on_media(self, frame: AudioFrame) -> None:
        """Consume a frame in :attr:`input_format`; the default drops it."""

    # -- hooks ---------------------------------------------------------
    def _source_attached(self, source: MediaUnit) -> None:
        """Called when ``source`` starts sending to this unit."""

    def _source_detached(self, source: MediaUnit) -> None:
        """Called when ``source`` stops sending to this unit."""

    def clear_media_buffer(self) -> None:
        """Drop audio this unit has queued for playout; the default has none."""
