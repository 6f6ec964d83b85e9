"""Gemini Live audio formats <-> gateway :class:`AudioFormat`.

The Live API takes raw little-endian PCM16 mono as ``realtimeInput.audio`` blobs
with MIME type ``audio/pcm;rate=16000`` (it resamples other rates, 16 kHz is
native) and produces PCM16 24 kHz as ``serverContent.modelTurn.parts[].inlineData``
(``audio/pcm;rate=24000``). There is no G.711, so a telephony route resamples on
both edges (8 kHz call -> 16 kHz in, 24 kHz -> 8 kHz out).
"""

from __future__ import annotations

from connectors.base import Capabilities
from gateway.media.format import PCM16_16K, PCM16_24K, AudioFormat, Encoding

#: What we send: PCM16 16 kHz.
INPUT_FORMATS: tuple[AudioFormat, ...] = (PCM16_16K,)
#: What the model sends: PCM16 24 kHz.
OUTPUT_FORMATS: tuple[AudioFormat, ...] = (PCM16_24K,)

#: What the Gemini Live API supports (no item truncation: Gemini has no such message).
GEMINI_LIVE_CAPABILITIES = Capabilities(
    input_formats=INPUT_FORMATS,
    output_formats=OUTPUT_FORMATS,
    server_vad=True,
    barge_in=True,
    truncation=False,
    function_calling=True,
    transcripts=True,
)


def mime_type(fmt: AudioFormat) -> str:
    """The blob MIME type for ``fmt`` (``"audio/pcm;rate=16000"``).

    Raises:
        ValueError: ``fmt`` is not mono PCM16.
    """
    if fmt.encoding is not Encoding.PCM16 or fmt.channels != 1:
        raise ValueError(f"the Gemini Live API does not take {fmt}")
    return f"audio/pcm;rate={fmt.sample_rate}"


def parse_mime_type(mime: str | None, default_rate: int = 24000) -> AudioFormat | None:
    """The :class:`AudioFormat` of a blob MIME type; None when it is not raw PCM audio.

    ``audio/pcm`` without a rate is taken as ``default_rate``; ``audio/L16`` is accepted
    as the same thing.
    """
    if not mime:
        return None
    kind, *params = (p.strip() for p in mime.split(";"))
    if kind.lower() not in ("audio/pcm", "audio/l16"):
        return None
    rate = default_rate
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            try:
                rate = int(value.strip())
            except ValueError:
                return None
    if rate <= 0:
        return None
    return AudioFormat(Encoding.PCM16, rate)
