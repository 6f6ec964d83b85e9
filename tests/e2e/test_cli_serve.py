"""``vgw serve`` as a user runs it: prints where it listens, bootstraps an account and
the default inbound rule, answers platform_api, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys

import httpx

from tests.peers import free_port


async def test_vgw_serve_prints_banner_bootstraps_and_stops(tmp_path):
    http_port, sip_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VGW_") and k != "OPENAI_API_KEY"}  # a fresh install
    env.update(VGW_HTTP_HOST="127.0.0.1", VGW_HTTP_PORT=str(http_port),
               VGW_SIP_HOST="127.0.0.1", VGW_SIP_PORT=str(sip_port),
               VGW_RTP_PORT_MIN="47000", VGW_RTP_PORT_MAX="47100", VGW_LOG_LEVEL="WARNING")
    exe = shutil.which("vgw") or sys.executable
    args = [] if exe.endswith("vgw") else ["-m", "gateway.cli"]
    proc = await asyncio.create_subprocess_exec(
        exe, *args, "serve", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        lines: list[str] = []
        while not any("default agent:" in line for line in lines):
            raw = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert raw, "vgw serve exited early:\n" + "".join(lines)
            lines.append(raw.decode())
        text = "".join(lines)
        assert f"HTTP http://127.0.0.1:{http_port}" in text
        assert f"udp+tcp 127.0.0.1:{sip_port}" in text
        key = re.search(r"account_id=1 api_key=(\S+)", text).group(1)
        # no OPENAI_API_KEY: the default rule answers with the offline cascade, and says
        # how to switch
        assert "default agent: offline cascade" in text and "set OPENAI_API_KEY" in text
        assert (tmp_path / "voice-gateway.db").exists()  # the default SQLite file

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            rules = (await http.post("/platform_api/GetRules/", data={
                "account_id": "1", "api_key": key, "with_scenarios": "true"})).json()
            (rule,) = rules["result"]
            assert rule["rule_name"] == "inbound" and rule["rule_pattern"] == ".*"
            denied = (await http.post("/platform_api/GetRules/", data={
                "account_id": "1", "api_key": key + "x"})).json()
            assert denied["error"]["code"] == 100
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 20)
    assert rc == 0
