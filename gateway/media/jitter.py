"""Receive-side jitter buffer for RTP audio (RFC 3550).

Packets are ordered by their extended (32+ bit) sequence number, extended from the
16-bit RTP sequence number with wrap-around the way RFC 3550 Appendix A.1 does. A
packet that jumps far from the expected sequence (more than ``max_frames`` ahead or
more than ``MAX_MISORDER`` behind) is held on probation: when the next packet follows
it in sequence, the remote has restarted its stream (new SSRC, re-INVITE, a media
server switch) and the buffer resyncs to it (A.1's ``MIN_SEQUENTIAL`` = 2); otherwise
the stray packet is discarded.

Playout is driven from outside: :meth:`JitterBuffer.pop` is called once per 20 ms
tick. It waits until ``depth_frames`` are buffered before it starts (initial fill, and
again after an underrun), returns ``None`` for a frame that is missing (the caller
substitutes silence: concealment), and trims a frame now and then when the buffer has
held far more than its depth for a while (sender clock faster than ours).

Pure: no I/O, no asyncio, no clock.
"""

from __future__ import annotations

__all__ = ["MAX_MISORDER", "JitterBuffer"]

#: Packets this far behind the playout point are "late"; further behind is a restart
#: candidate (RFC 3550 Appendix A.1 uses the same constant).
MAX_MISORDER = 100

_MISSING = object()
_RING = 64


class JitterBuffer:
    """Reorders RTP payloads and hands out one frame per tick.

    Args:
        depth_frames: frames buffered before playout starts (3 = 60 ms at 20 ms a frame).
        frame_samples: RTP timestamp units per frame (160 = 20 ms at 8000 Hz).
        max_frames: most frames held; also the largest forward jump (in packets)
            accepted without a resync.

    Attributes (counters, monotonic):
        received: packets pushed.
        duplicates: packets seen before (buffered or just played), dropped.
        late: packets that arrived after their slot was played (or concealed), dropped.
        lost: frames concealed because their packet never arrived in time.
        reordered: packets accepted although a higher sequence number came first.
        discarded: stray packets far outside the window that did not start a new stream.
        resyncs: times the buffer followed a sequence jump (remote restarted its stream).
        underruns: ticks on which nothing at all was buffered once playing.
        trimmed: frames dropped to bring latency back down after it grew.
    """

    __slots__ = ("_buf", "_depth", "_fill_ticks", "_filling", "_max_ext", "_max_frames",
                 "_next", "_over_ticks", "_played", "_probation", "_started", "discarded",
                 "duplicates", "frame_samples", "late", "lost", "received", "reordered",
                 "resyncs", "trimmed", "underruns")

    def __init__(self, depth_frames: int = 3, frame_samples: int = 160,
                 max_frames: int = 50) -> None:
        if depth_frames < 1:
            raise ValueError("depth_frames must be >= 1")
        if max_frames <= depth_frames:
            raise ValueError("max_frames must be larger than depth_frames")
        self._depth = depth_frames
        self._max_frames = max_frames
        self.frame_samples = frame_samples
        self._buf: dict[int, bytes | None] = {}
        self._max_ext: int | None = None
        self._next = 0
        self._started = False
        self._filling = True
        self._fill_ticks = 0
        self._probation: tuple[int, int, bytes | None] | None = None  # (ext, seq, payload)
        self._played = [-1] * _RING
        self._over_ticks = 0
        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.lost = 0
        self.reordered = 0
        self.discarded = 0
        self.resyncs = 0
        self.underruns = 0
        self.trimmed = 0

    # -- state ---------------------------------------------------------
    @property
    def depth_frames(self) -> int:
        """Frames buffered before playout (re)starts."""
        return self._depth

    @property
    def started(self) -> bool:
        """True once playout has begun; stays True (gaps are concealed from then on)."""
        return self._started

    @property
    def buffered(self) -> int:
        """Packets currently held."""
        return len(self._buf)

    @property
    def highest_sequence(self) -> int | None:
        """Highest extended sequence number seen (RFC 3550 §6.4.1), or None."""
        return self._max_ext

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters."""
        return {name: getattr(self, name) for name in (
            "received", "duplicates", "late", "lost", "reordered", "discarded", "resyncs",
            "underruns", "trimmed")}

    def reset(self) -> None:
        """Drop buffered packets and start a new stream (new SSRC); counters are kept.

        The next packet pushed is accepted whatever its sequence number, and playout
        resumes after a new fill.
        """
        self._buf.clear()
        self._max_ext = None
        self._filling = True
        self._fill_ticks = 0
        self._probation = None
        self._played = [-1] * _RING
        self._over_ticks = 0

    # -- input ---------------------------------------------------------
    def push(self, seq: int, timestamp: int, payload: bytes | None) -> bool:
        """Add one received packet.

        Args:
            seq: 16-bit RTP sequence number.
            timestamp: RTP timestamp (informational).
            payload: the frame (160 bytes of G.711 for 20 ms at 8 kHz), or None for a
                packet that shares the sequence space but carries no audio (RFC 4733
                events, comfort noise): its slot plays as None without counting as lost.

        Returns:
            True when the packet was buffered, False when it was dropped.
        """
        self.received += 1
        seq &= 0xFFFF
        max_ext = self._max_ext
        if max_ext is None:
            self._resync(seq, payload, None, count=False)
            return True
        ext = max_ext + ((seq - max_ext + 32768) & 0xFFFF) - 32768
        if self._started:
            behind = self._next - ext
            if 0 < behind <= MAX_MISORDER:
                if self._played[ext % _RING] == ext:
                    self.duplicates += 1
                else:
                    self.late += 1
                return False
            far = behind > 0 or ext - self._next >= self._max_frames
        else:
            delta = ext - max_ext
            far = delta >= self._max_frames or delta < -MAX_MISORDER
        if far:
            prob = self._probation
            if prob is not None and seq == (prob[1] + 1) & 0xFFFF:
                self._resync(prob[1], prob[2], (seq, payload), count=True)
                return True
            if prob is not None:
                self.discarded += 1
            self._probation = (ext, seq, payload)
            return False
        buf = self._buf
        if ext in buf:
            self.duplicates += 1
            return False
        if ext < max_ext:
            self.reordered += 1
        else:
            self._max_ext = ext
        buf[ext] = payload
        if self._probation is not None:
            self._probation = None
            self.discarded += 1
        if len(buf) > self._max_frames:  # only when nobody pops
            del buf[min(buf)]
        return True

    def _resync(self, seq: int, payload: bytes | None,
                second: tuple[int, bytes | None] | None, *, count: bool) -> None:
        """Start a new stream at 16-bit ``seq`` (extended to itself + 65536)."""
        self._buf.clear()
        self._probation = None
        self._played = [-1] * _RING
        self._over_ticks = 0
        # A fresh extension base well above any old extended number keeps ext monotonic
        # for the ring and for RTCP's extended highest sequence number.
        base = 0 if self._max_ext is None else ((self._max_ext >> 16) + 2) << 16
        ext = base + seq
        self._buf[ext] = payload
        self._max_ext = ext
        if second is not None:
            self._buf[ext + 1] = second[1]
            self._max_ext = ext + 1
        self._next = ext
        self._filling = True
        self._fill_ticks = 0
        if count:
            self.resyncs += 1

    # -- output --------------------------------------------------------
    def pop(self) -> bytes | None:
        """Take the frame for this tick (call once per frame interval).

        Returns:
            The payload, or None when there is nothing to play: before playout started
            (check :attr:`started`), while refilling after an underrun, for a lost
            packet (concealment), or for a no-audio slot pushed with ``payload=None``.
        """
        buf = self._buf
        if self._filling:
            if not buf:
                return None
            self._fill_ticks += 1
            if len(buf) < self._depth and self._fill_ticks <= self._depth:
                return None
            first = min(buf)
            if self._started and first > self._next:
                self.lost += first - self._next
            self._next = first
            self._filling = False
            self._started = True
        ext = self._next
        payload = buf.pop(ext, _MISSING)
        if payload is _MISSING:
            if not buf:
                self.underruns += 1
                self._filling = True
                self._fill_ticks = 0
                return None
            self.lost += 1
            self._next = ext + 1
            return None
        self._next = ext + 1
        self._played[ext % _RING] = ext
        if len(buf) > 2 * self._depth:
            self._over_ticks += 1
            if self._over_ticks >= 25 and self._over_ticks % 5 == 0:
                # Latency grew (a burst, or the sender's clock runs fast): drop one frame.
                nxt = self._next
                buf.pop(nxt, None)
                self._played[nxt % _RING] = nxt
                self._next = nxt + 1
                self.trimmed += 1
        else:
            self._over_ticks = 0
        return payload  # type: ignore[return-value]
