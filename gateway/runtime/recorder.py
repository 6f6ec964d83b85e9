"""Recorders: media units that write the audio they are sent to a WAV or MP3 file
(VoxEngine's ``Recorder`` module and ``Call.record``, in snake_case).

Names follow Voximplant's VoxEngine reference: ``VoxEngine.createRecorder(RecorderParameters)``
returns a ``Recorder`` (``id``, ``mute``, ``stop``, ``addEventListener``) whose
``RecorderEvents`` are ``Started`` (``url``), ``Stopped`` (``url``, ``duration`` in
seconds, ``cost``) and ``RecorderError`` (``error``); each carries ``recorder``.

* **Input.** A recorder receives PCM16 mono at its rate (8000 Hz by default, 16000 or
  24000 Hz with ``sample_rate``, 48000 Hz with ``hd_audio`` as in VoxEngine); the route
  edge converts whatever its source sends (G.711 from a call, a conference's mix, a
  player). ``unit.send_media_to(recorder)`` records that unit; a new source replaces the
  old one, as everywhere.
* **Timing.** The recorder runs on the shared 20 ms media clock
  (:mod:`gateway.media.clock`): every tick it writes exactly one 20 ms frame per
  channel: the next frame that arrived, or silence when none did. So a recording lasts
  as long as it ran, a paused source is silence, and a burst (a Voice AI's answer) is
  written at real time, as a listener would have heard it. An input queue that stays a
  few frames deep (a paced source whose ticks interleave with ours) is trimmed by a frame
  after a second, so jitter never adds latency for good; a deep queue (a burst) is not
  trimmed; at most :data:`MAX_QUEUE_MS` is held.
* **Files.** Frames are collected on the event loop and written by the default thread
  pool in batches of :data:`FLUSH_FRAMES` (``asyncio.to_thread``; one batch in flight at
  a time, in order), so the clock never waits for a disk or an encoder. WAV is written
  with :mod:`wave` (PCM16 LE); MP3 with PyAV's libmp3lame (32 kbit/s per channel at
  8 kHz, VoxEngine's default quality). In a session the file is
  ``<VGW_RECORDINGS_DIR>/<account_id>/<session_id>/<recorder id>.<wav|mp3>`` and its URL
  ``<base URL>/records/<recorder id>`` (downloaded with the account's credentials).
* **End.** :meth:`Recorder.stop` (or the end of the session) stops it: the last batch is
  written, the file closed, the recording registered with the runtime's store
  (``SessionStore.recording_finished``, listed by ``GetCallHistory(with_records=true)``),
  then ``Stopped`` fires.

Call recording (:mod:`gateway.runtime.call_recording`) uses a two-input recorder:
``layout="stereo"`` puts input 0 on the left channel and input 1 on the right, and
``layout="mix"`` sums them into one channel.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import wave
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError
from gateway.media.clock import get_media_clock
from gateway.media.convert import FormatConverter
from gateway.media.format import FRAME_MS, AudioFormat, AudioFrame, Encoding
from gateway.runtime.context import current_session
from gateway.runtime.events import ErrorSink, EventTarget
from gateway.runtime.media_unit import MediaUnit
from gateway.runtime.records import RecordingRecord

__all__ = [
    "FORMATS",
    "SAMPLE_RATES",
    "Recorder",
    "RecorderError",
    "RecorderEvents",
    "RecorderInput",
    "RecorderTap",
    "create_recorder",
]

log = logging.getLogger(__name__)

#: File formats a recorder writes.
FORMATS = ("wav", "mp3")
#: Recording rates (Hz); 8000 is VoxEngine's default, 48000 its ``hd_audio``.
SAMPLE_RATES = (8000, 16000, 24000, 48000)
#: VoxEngine's narrowband default and its ``hd_audio`` rate.
DEFAULT_RATE, HD_RATE = 8000, 48000
#: MP3 bit rate per channel (kbit/s) at each rate (VoxEngine: 32 kbit/s at 8 kHz,
#: 192 kbit/s at 48 kHz).
MP3_KBPS = {8000: 32, 16000: 64, 24000: 64, 48000: 192}
#: Frames (20 ms) collected before a batch is handed to the writer thread.
FLUSH_FRAMES = 25
#: Most audio an input queue holds (ms); beyond it the oldest audio is dropped.
MAX_QUEUE_MS = 120_000
#: An input queue up to this many frames deep counts as jitter (it gets trimmed).
JITTER_FRAMES = 5
#: Ticks a jittery queue may stay more than one frame deep before a frame is dropped.
TRIM_AFTER_TICKS = 50
#: Frames a followed input may run ahead of what it follows (see :class:`RecorderInput`).
FOLLOW_SLACK_FRAMES = 2
#: VoxEngine parameters accepted and ignored: cloud storage, transcription and video.
IGNORED_PARAMETERS = frozenset({
    "expire", "recordNamePrefix", "contentDispositionFilename", "transcribe", "language",
    "provider", "dict", "labels", "video", "videoParameters", "record_on_answer",
})

#: Mono, two inputs on the left and right channels, or two inputs summed.
MONO, STEREO, MIX = "mono", "stereo", "mix"


class RecorderEvents:
    """VoxEngine ``RecorderEvents`` names (payloads: see the module docstring)."""

    Started = "RecorderEvents.Started"
    Stopped = "RecorderEvents.Stopped"
    RecorderError = "RecorderEvents.RecorderError"


class RecorderError(GatewayError):
    """A recorder could not be created, or its file could not be written."""


def _pcm16(rate: int) -> AudioFormat:
    return AudioFormat(Encoding.PCM16, rate)


class RecorderInput:
    """One input queue of a recorder: frames in any format in, 20 ms PCM16 frames out.

    Args:
        rate: the recorder's rate; what comes in is converted to PCM16 mono at it.
        follow: optional; a function returning how many ms of this input's audio are
            still to be played elsewhere (a call's playout queue). After each frame
            taken, the queue is cut to that much (plus :data:`FOLLOW_SLACK_FRAMES`) from
            the front, so audio the call dropped (``clear_media_buffer``, barge-in) is
            dropped here too. A followed input is never trimmed for jitter.

    Attributes:
        underruns: ticks the input's source was expected but no full frame had arrived.
        dropped_ms: audio dropped (queue full, jitter trim, follow).
    """

    def __init__(self, rate: int, *, follow: Callable[[], float] | None = None) -> None:
        self.format = _pcm16(rate)
        self.follow = follow
        self._frame = self.format.frame_bytes(FRAME_MS)
        self._max = self.format.frame_bytes(MAX_QUEUE_MS)
        self._buf = bytearray()
        self._conv: FormatConverter | None = None
        self._deep_ticks = 0
        self.underruns = 0
        self.dropped_ms = 0.0

    @property
    def queued_ms(self) -> float:
        """Milliseconds waiting in the queue."""
        return self.format.duration_ms(len(self._buf))

    def push(self, frame: AudioFrame) -> None:
        """Queue ``frame`` (any mono format; converted on the way in)."""
        if frame.format == self.format:
            data = frame.data
        else:
            conv = self._conv
            if conv is None or conv.src != frame.format:
                conv = self._conv = FormatConverter(frame.format, self.format)
            data = conv.convert(frame.data)
        buf = self._buf
        buf += data
        excess = len(buf) - self._max
        if excess > 0:
            self._drop(-(-excess // 2) * 2)

    def take(self) -> bytes | None:
        """The next 20 ms of PCM16, or None (silence) when no full frame is queued."""
        buf, fb = self._buf, self._frame
        if len(buf) < fb:
            self._deep_ticks = 0
            return None
        frame = bytes(buf[:fb])
        del buf[:fb]
        if self.follow is not None:
            keep = fb * FOLLOW_SLACK_FRAMES + self.format.frame_bytes(max(0, int(self.follow())))
            if len(buf) > keep:
                self._drop(len(buf) - keep)
        elif fb <= len(buf) <= fb * JITTER_FRAMES:
            self._deep_ticks += 1
            if self._deep_ticks >= TRIM_AFTER_TICKS:
                self._drop(fb)
                self._deep_ticks = 0
        else:
            self._deep_ticks = 0
        return frame

    def clear(self) -> None:
        """Drop everything queued."""
        self._buf.clear()
        self._deep_ticks = 0

    def _drop(self, nbytes: int) -> None:
        del self._buf[:nbytes]
        self.dropped_ms += self.format.duration_ms(nbytes)


# -- encoders (blocking: they run in worker threads) --------------------------------
class _WavEncoder:
    """PCM16 LE WAV via :mod:`wave` (its header is patched as data is written)."""

    def __init__(self, path: Path, rate: int, channels: int) -> None:
        self._w = wave.open(str(path), "wb")  # closed in close()
        self._w.setnchannels(channels)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)

    def write(self, pcm: bytes) -> None:
        self._w.writeframes(pcm)

    def close(self) -> None:
        self._w.close()


class _Mp3Encoder:
    """MP3 via PyAV's libmp3lame (PyAV re-chunks to the codec's frame size)."""

    def __init__(self, path: Path, rate: int, channels: int) -> None:
        import av

        self._channels = channels
        self._layout = "stereo" if channels == 2 else "mono"
        self._rate = rate
        self._container = av.open(str(path), "w", format="mp3")
        try:
            self._stream = self._container.add_stream("libmp3lame", rate=rate,
                                                      layout=self._layout)
            kbps = MP3_KBPS.get(rate, 64) * channels
            self._stream.bit_rate = min(kbps, 160 if rate < 32000 else 320) * 1000
        except Exception:
            self._container.close()
            raise
        self._pts = 0

    def write(self, pcm: bytes) -> None:
        import av
        import numpy as np

        samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, self._channels).T
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="s16p",
                                           layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += samples.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


def _open_encoder(path: Path, fmt: str, rate: int, channels: int) -> _WavEncoder | _Mp3Encoder:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "mp3":
        return _Mp3Encoder(path, rate, channels)
    return _WavEncoder(path, rate, channels)


def _parse(parameters: dict[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    params = dict(parameters or {})
    unknown = set(params) - allowed - IGNORED_PARAMETERS
    if unknown:
        raise ValueError(f"unknown recorder parameters {sorted(unknown)}")
    return params


def recording_options(parameters: dict[str, Any] | None, *, format: str | None,
                      sample_rate: int | None, hd_audio: bool | None, name: str | None,
                      allowed: set[str] | None = None) -> dict[str, Any]:
    """Resolve VoxEngine's ``RecorderParameters`` / ``CallRecordParameters`` (a dict) and
    keyword arguments (which win) into ``format``, ``sample_rate`` and ``name``.

    ``lossless=True`` (VoxEngine: FLAC) records WAV, the lossless format here.

    Raises:
        ValueError: an unknown parameter, format or rate.
    """
    params = _parse(parameters, {"name", "hd_audio", "lossless", "format", "sample_rate",
                                 *(allowed or ())})
    if format is None:
        format = params.get("format") or "wav"  # lossless (FLAC in VoxEngine): WAV
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ValueError(f"recording format must be one of {FORMATS}, got {format!r}")
    if hd_audio is None:
        hd_audio = bool(params.get("hd_audio", False))
    if sample_rate is None:
        sample_rate = params.get("sample_rate")
    rate = int(sample_rate) if sample_rate is not None else (HD_RATE if hd_audio else
                                                             DEFAULT_RATE)
    if rate not in SAMPLE_RATES:
        raise ValueError(f"recording sample rate must be one of {SAMPLE_RATES}, got {rate}")
    if name is None:
        name = params.get("name")
    return {"format": fmt, "sample_rate": rate, "name": None if name is None else str(name),
            "params": params}


class Recorder(MediaUnit, EventTarget):
    """Records audio to a WAV or MP3 file on the shared media clock (VoxEngine ``Recorder``).

    Args:
        format: "wav" (default) or "mp3".
        sample_rate: recording rate, one of :data:`SAMPLE_RATES` (8000).
        name: the record's name in the call history (default: its file name).
        layout: ``"mono"`` (one input: what is sent to the recorder), ``"stereo"`` (two
            inputs, left and right) or ``"mix"`` (two inputs summed; call recording).
        owner: the session (default: the one running now); the file goes under its
            runtime's ``recordings_dir`` and the session stops the recorder when it ends.
        path: write here instead (no session needed; nothing is registered).
        url: the record's URL instead of ``<base URL>/records/<id>`` (or ``file:``).
        call_id: the call this recording belongs to (call recording).

    Raises:
        RecorderError: in a session whose runtime has no recordings directory.
        ValueError: a bad format, rate or layout.
    """

    def __init__(self, *, format: str = "wav", sample_rate: int = DEFAULT_RATE,
                 name: str | None = None, layout: str = MONO, owner: ErrorSink | None = None,
                 path: str | Path | None = None, url: str | None = None,
                 call_id: str | None = None) -> None:
        fmt = str(format).lower()
        if fmt not in FORMATS:
            raise ValueError(f"recording format must be one of {FORMATS}, got {format!r}")
        if int(sample_rate) not in SAMPLE_RATES:
            raise ValueError(f"recording sample rate must be one of {SAMPLE_RATES}, "
                             f"got {sample_rate}")
        if layout not in (MONO, STEREO, MIX):
            raise ValueError(f"recorder layout must be mono, stereo or mix, got {layout!r}")
        session = owner if owner is not None else current_session.get(None)
        self._id = uuid.uuid4().hex
        self._format = fmt
        self._rate = int(sample_rate)
        self._layout = layout
        self._channels = 2 if layout == STEREO else 1
        self._call_id = call_id
        self._session = session
        runtime = getattr(session, "runtime", None)
        self._relative: str | None = None
        if path is not None:
            self._path = Path(path)
        else:
            base = getattr(runtime, "recordings_dir", None)
            if base is None:
                raise RecorderError("recording needs a recordings directory "
                                    "(VGW_RECORDINGS_DIR)",
                                    session_id=getattr(session, "id", None))
            account = int(getattr(getattr(session, "match", None), "account_id", 0))
            rel = Path(str(account)) / str(getattr(session, "id", "nosession")) / (
                f"{self._id}.{fmt}")
            self._relative = rel.as_posix()
            self._path = Path(base) / rel
        if url is None:
            base_url = getattr(runtime, "http_base_url", None)
            url = (f"{base_url}/records/{self._id}" if base_url and self._relative
                   else self._path.resolve().as_uri())
        self._url = url
        self._name = name if name else f"{self._id}.{fmt}"
        MediaUnit.__init__(self)
        EventTarget.__init__(self, session)
        self.inputs = [RecorderInput(self._rate) for _ in range(1 if layout == MONO else 2)]
        self.input_format = _pcm16(self._rate) if layout == MONO else None
        self.start_time = datetime.now(UTC)
        self._frames = 0  # 20 ms frames recorded
        self._pending = bytearray()
        self._silence = bytes(_pcm16(self._rate).frame_bytes(FRAME_MS) * self._channels)
        self._active = True
        self._muted = False
        #: Why the recording failed (RecorderError), or None.
        self.error: str | None = None
        self._stop_hooks: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._clock = get_media_clock()
        self._tick_handle: int | None = self._clock.subscribe(self._tick)
        #: The registered record (``record_id`` set) once the store has it.
        self.record: RecordingRecord | None = None
        self.file_size = 0
        register = getattr(session, "register_unit", None)
        if callable(register):
            register(self)
        run = getattr(session, "run_in_context", None)
        coro = self._write_loop()
        self._writer: asyncio.Task[None] = (run(asyncio.ensure_future, coro) if callable(run)
                                            else asyncio.ensure_future(coro))

    # -- VoxEngine API ------------------------------------------------------------
    def id(self) -> str:
        """The recorder's id (also the key in its URL and its file name)."""
        return self._id

    @property
    def url(self) -> str:
        """Where the record is downloaded (``GET /records/<id>``, the account's auth)."""
        return self._url

    @property
    def path(self) -> Path:
        """The file being written."""
        return self._path

    @property
    def format(self) -> str:
        """"wav" or "mp3"."""
        return self._format

    @property
    def sample_rate(self) -> int:
        """The recording rate, Hz."""
        return self._rate

    @property
    def channels(self) -> int:
        """1, or 2 for a stereo call recording."""
        return self._channels

    @property
    def active(self) -> bool:
        """True until :meth:`stop` (or a write error)."""
        return self._active

    @property
    def duration(self) -> float:
        """Seconds recorded so far (20 ms per media clock tick)."""
        return self._frames * FRAME_MS / 1000

    def mute(self, do_mute: bool = True) -> None:
        """Record silence instead of the sources while muted (the sources stay attached)."""
        self._muted = bool(do_mute)

    def stop(self) -> None:
        """Stop recording: the file is finished and registered, then ``Stopped`` fires
        (asynchronously; :meth:`wait_stopped` waits for it). Idempotent."""
        if self._active:
            self._halt()
            self._wake.set()

    async def wait_stopped(self, timeout: float | None = None) -> None:
        """Wait until the file is closed and registered (after :meth:`stop`)."""
        await asyncio.wait_for(asyncio.shield(self._writer), timeout)

    async def close(self) -> None:
        """Stop and wait for the file (the session ends; events still fire)."""
        self.stop()
        await self.wait_stopped()

    def __repr__(self) -> str:
        state = "recording" if self._active else "stopped"
        return f"<Recorder {self._id[:8]} {self._format} {state} {self.duration:.2f} s>"

    # -- media --------------------------------------------------------------------
    def _on_media(self, frame: AudioFrame) -> None:
        if self._active:
            self.inputs[0].push(frame)

    def _source_detached(self, source: MediaUnit) -> None:
        self.inputs[0].clear()

    def add_stop_hook(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` when the recorder stops (call recording unroutes its tap)."""
        if self._active:
            self._stop_hooks.append(hook)
        else:
            hook()

    def _tick(self) -> None:
        if not self._active:
            return
        frames = [inp.take() for inp in self.inputs]
        if self._muted or all(f is None for f in frames):
            data = self._silence
        elif self._layout == MONO:
            data = frames[0] or self._silence
        else:
            data = self._combine(frames)
        self._pending += data
        self._frames += 1
        if len(self._pending) >= len(self._silence) * FLUSH_FRAMES:
            self._wake.set()

    def _combine(self, frames: list[bytes | None]) -> bytes:
        import numpy as np

        n = len(self._silence) // self._channels // 2
        left = np.frombuffer(frames[0], "<i2") if frames[0] else np.zeros(n, "<i2")
        right = np.frombuffer(frames[1], "<i2") if frames[1] else np.zeros(n, "<i2")
        if self._layout == STEREO:
            out = np.empty(2 * n, "<i2")
            out[0::2] = left
            out[1::2] = right
            return out.tobytes()
        mixed = left.astype(np.int32) + right.astype(np.int32)
        return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()

    def _halt(self) -> None:
        """Stop taking audio: leave the clock, run the stop hooks, drop the routes."""
        self._active = False
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None
        hooks, self._stop_hooks = self._stop_hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("recorder %s: stop hook failed", self._id[:8])
        self.stop_all_media()
        for inp in self.inputs:
            inp.clear()

    # -- the file -------------------------------------------------------------------
    async def _write_loop(self) -> None:
        try:
            encoder = await asyncio.to_thread(_open_encoder, self._path, self._format,
                                              self._rate, self._channels)
        except Exception as exc:
            self._fail(f"cannot open {self._path}: {exc}")
            return
        self._log(f"recording {self._id} started: {self._relative or self._path}")
        self.dispatch(RecorderEvents.Started, recorder=self, url=self._url)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._pending:
                    chunk = bytes(self._pending)
                    self._pending.clear()
                    await asyncio.to_thread(encoder.write, chunk)
                if not self._active and not self._pending:
                    break
            await asyncio.to_thread(encoder.close)
            self.file_size = await asyncio.to_thread(lambda: self._path.stat().st_size)
        except asyncio.CancelledError:
            await asyncio.to_thread(self._abandon, encoder)
            raise
        except Exception as exc:
            await asyncio.to_thread(self._abandon, encoder)
            self._fail(f"writing {self._path} failed: {exc}")
            return
        duration = round(self.duration, 3)
        self._log(f"recording {self._id} stopped: {duration:g} s, {self.file_size} bytes")
        await self._register(duration)
        self.dispatch(RecorderEvents.Stopped, recorder=self, url=self._url, duration=duration,
                      cost=0)

    @staticmethod
    def _abandon(encoder: Any) -> None:
        try:
            encoder.close()
        except Exception:
            log.debug("closing a failed recording", exc_info=True)

    async def _register(self, duration: float) -> None:
        session = self._session
        store = getattr(getattr(session, "runtime", None), "store", None)
        finished = getattr(store, "recording_finished", None)
        record = RecordingRecord(
            record_key=self._id, account_id=int(getattr(getattr(session, "match", None),
                                                        "account_id", 0)),
            session_id=str(getattr(session, "id", "")), call_id=self._call_id,
            record_name=self._name, path=self._relative or str(self._path),
            start_time=self.start_time, duration=duration, file_size=self.file_size,
            format=self._format, channels=self._channels, sample_rate=self._rate)
        self.record = record
        if self._relative is None or not callable(finished):
            return
        try:
            record.record_id = await finished(record)
        except Exception as exc:
            log.exception("recording %s: registering it failed", self._id)
            self._log(f"recording {self._id}: registering it failed: {exc!r}", logging.ERROR)

    def _fail(self, message: str) -> None:
        self.error = message
        if self._active:
            self._halt()
        self._log(f"recording {self._id} failed: {message}", logging.ERROR)
        self.dispatch(RecorderEvents.RecorderError, recorder=self, error=message)

    def _log(self, text: str, level: int = logging.INFO) -> None:
        log_line = getattr(self._session, "log_line", None)
        if callable(log_line):
            log_line(text, level)
        else:
            log.log(level, "%s", text)


class RecorderTap(MediaUnit):
    """A sink that feeds one input of a recorder: ``call.send_media_to(tap)`` records
    what the call receives. When its source stops sending to it (the call ended), the
    recorder stops."""

    def __init__(self, recorder: Recorder, index: int) -> None:
        super().__init__()
        self._recorder = recorder
        self._input = recorder.inputs[index]
        self.input_format = self._input.format

    def _on_media(self, frame: AudioFrame) -> None:
        if self._recorder.active:
            self._input.push(frame)

    def _source_detached(self, source: MediaUnit) -> None:
        self._recorder.stop()

    def __repr__(self) -> str:
        return f"<RecorderTap of {self._recorder!r}>"


def create_recorder(parameters: dict[str, Any] | None = None, *, format: str | None = None,
                    sample_rate: int | None = None, hd_audio: bool | None = None,
                    name: str | None = None, owner: ErrorSink | None = None) -> Recorder:
    """A new mono :class:`Recorder` from VoxEngine's ``RecorderParameters`` (a dict:
    ``name``, ``hd_audio``, ``lossless``; cloud-storage and transcription keys are
    ignored) plus the gateway's ``format`` and ``sample_rate``; keywords win.

    Raises:
        ValueError: an unknown parameter, format or rate.
        RecorderError: no recordings directory.
    """
    opts = recording_options(parameters, format=format, sample_rate=sample_rate,
                             hd_audio=hd_audio, name=name)
    return Recorder(format=opts["format"], sample_rate=opts["sample_rate"], name=opts["name"],
                    owner=owner)
