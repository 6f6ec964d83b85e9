"""The audio plane, with no sockets: formats, G.711, resampling, jitter and playout buffers."""

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
]
