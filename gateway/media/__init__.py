"""The audio plane, with no sockets: formats, G.711, resampling, jitter and playout buffers."""

from gateway.media.clock import MediaClock, get_media_clock
from gateway.media.convert import FormatConverter
from gateway.media.format import (
    FRAME_MS,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    PCM16_48K,
    PCMA_8K,
    PCMU_8K,
    AudioFormat,
    AudioFrame,
    Encoding,
)
from gateway.media.jitter import JitterBuffer
from gateway.media.playout import PlayoutBuffer
from gateway.media.resample import Resampler

__all__ = [
    "FRAME_MS",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_24K",
    "PCM16_48K",
    "PCMA_8K",
    "PCMU_8K",
    "AudioFormat",
    "AudioFrame",
    "Encoding",
    "FormatConverter",
    "JitterBuffer",
    "MediaClock",
    "PlayoutBuffer",
    "Resampler",
    "get_media_clock",
]
