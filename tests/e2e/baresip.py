"""Run the real baresip (baresip-core) headless as a SIP peer for end-to-end tests.

Config follows INTEROP.md: aufile source (S16LE mono 8 kHz WAV; the call hangs
up at end of file), sndfile dumps of what was sent (``dump-*-enc.wav``) and what
was received (``dump-*-dec.wav``).
"""

from __future__ import annotations

import asyncio
import glob
import os
from pathlib import Path

from tests.peers import free_udp_port, require_binary

CONFIG = """poll_method epoll
sip_listen 127.0.0.1:{sip_port}
net_interface 127.0.0.1
audio_player alsa,null
audio_alert alsa,null
audio_source aufile,{source}
ausrc_srate 8000
auplay_srate 8000
ausrc_channels 1
auplay_channels 1
rtp_ports {rtp_min}-{rtp_max}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module alsa.so
module sndfile.so
module_tmp account.so
module_app menu.so
snd_path {out}
"""


class Baresip:
    """One baresip process in its own temp config dir.

    Args:
        workdir: a temp directory for config and dumps.
        source_wav: WAV played as the microphone (S16LE mono 8 kHz).
    """

    def __init__(self, workdir: Path, source_wav: Path) -> None:
        self.binary = require_binary("baresip")
        self.dir = workdir / "baresip"
        self.out = workdir / "baresip-out"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_udp_port()
        rtp_min = 30000 + (os.getpid() * 7 + self.sip_port) % 20000 // 2 * 2
        (self.dir / "config").write_text(CONFIG.format(
            sip_port=self.sip_port, source=source_wav, rtp_min=rtp_min, rtp_max=rtp_min + 40,
            out=self.out))
        (self.dir / "accounts").write_text(
            f"<sip:bs@127.0.0.1:{self.sip_port}>;regint=0;answermode=auto\n")
        self.proc: asyncio.subprocess.Process | None = None
        self.log = workdir / "baresip.log"

    async def dial(self, uri: str, timeout_s: int = 30) -> None:
        """Start baresip dialling ``uri``; it exits after ``timeout_s`` seconds at most."""
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-f", str(self.dir), "-e", f"/dial {uri}", "-t", str(timeout_s),
            stdin=asyncio.subprocess.DEVNULL, stdout=self.log.open("wb"),
            stderr=asyncio.subprocess.STDOUT)

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def dumps(self, kind: str) -> list[str]:
        """Paths of sndfile dumps: kind "enc" (sent) or "dec" (received)."""
        return sorted(glob.glob(str(self.out / f"dump-*-{kind}.wav")))
