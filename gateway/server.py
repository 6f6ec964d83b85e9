"""Composition root: builds the store, runtime, SIP adapter and HTTP API; nothing else wires.

``Gateway(settings).start()`` brings everything up on the running event loop, and
``stop()`` ends every session (hanging up its calls and writing CDRs) before
closing the listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from pathlib import Path

import uvicorn

from gateway import speech
from gateway.adapters.sip.adapter import SipAdapter
from gateway.adapters.sip.rtp_session import PortAllocator
from gateway.api.app import create_app
from gateway.media import resample
from gateway.runtime.leg import DigestCredentials
from gateway.runtime.manager import Runtime
from gateway.settings import Settings
from gateway.store import open_store

log = logging.getLogger(__name__)

#: Scenarios shipped with the gateway (the repository's ``scenarios/`` folder).
SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def scenario_globals() -> dict[str, object]:
    """Connector namespaces put into every scenario's globals."""
    from connectors.registry import connector_namespaces

    return connector_namespaces()


def default_agent_line() -> str:
    """Which voice AI the shipped inbound scenario answers with, and how to switch."""
    if os.environ.get("OPENAI_API_KEY"):
        return ("default agent: OpenAI Realtime (OPENAI_API_KEY is set; unset it to use "
                "the offline cascade)")
    return ("default agent: offline cascade (PocketSphinx + rule-based responder + "
            "espeak-ng); set OPENAI_API_KEY to answer with OpenAI Realtime instead")


class Gateway:
    """One gateway process: store + runtime + SIP + HTTP.

    Attributes (after ``start``): ``store``, ``runtime``, ``sip``, ``http_port``,
    ``api_key`` (the bootstrapped account's key when generated here).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api_key: str | None = None
        self.generated_key = False
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_sock: socket.socket | None = None
        self._warmup: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        if bool(s.tls_cert) != bool(s.tls_key):
            raise ValueError("VGW_TLS_CERT and VGW_TLS_KEY must be set together")
        speech.configure(workers=s.speech_workers)
        self.store = await open_store(s.database_url)
        if s.secrets_key is not None:
            self.store.set_secrets_key(s.secrets_key.get_secret_value())
        await self._bootstrap_account()
        # one-time costs paid now, before any call: importing PyAV for the first
        # resample, and forking children (a fork stalls the event loop)
        await asyncio.to_thread(resample.preload)
        await speech.start_speech()
        if s.bootstrap_inbound:
            log.info(default_agent_line())
            if not os.environ.get("OPENAI_API_KEY"):  # the default rule uses the cascade
                self._warmup = asyncio.get_running_loop().create_task(
                    speech.speech_pool().warm_up(speech.worker_count()))
        self._http_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._http_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._http_sock.bind((s.http_host, s.http_port))
        self.http_port = self._http_sock.getsockname()[1]
        if s.http_port == 0:
            s.http_port = self.http_port
        trunk_auth = None
        if s.sip_trunk_user:
            pw = s.sip_trunk_password.get_secret_value() if s.sip_trunk_password else ""
            trunk_auth = DigestCredentials(s.sip_trunk_user, pw)
        self.runtime = Runtime(
            self.store, s.http_base_url(), extra_globals=scenario_globals(),
            idle_timeout=s.session_idle_timeout, trunk_uri=s.sip_trunk_uri, trunk_auth=trunk_auth,
            logs_dir=s.logs_dir, http_handler_timeout=s.http_handler_timeout,
            tls=s.tls_enabled(), handler_time_limit=s.handler_time_limit,
            recordings_dir=s.recordings_dir,
        )
        self.sip = SipAdapter(
            host=s.sip_host, port=s.sip_port, advertised_host=s.sip_advertised_host(),
            ports=PortAllocator(s.rtp_port_min, s.rtp_port_max),
            on_incoming=self.runtime.on_incoming, jitter_depth=s.jitter_depth_frames,
            answer_timeout=s.call_answer_timeout,
        )
        await self.sip.start()
        self.runtime.dialer = self.sip
        app = create_app(store=self.store, runner=self.runtime, settings=s)
        tls = {"ssl_certfile": s.tls_cert, "ssl_keyfile": s.tls_key} if s.tls_enabled() else {}
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                **tls)
        self._http = uvicorn.Server(config)
        self._http_task = asyncio.get_running_loop().create_task(
            self._http.serve(sockets=[self._http_sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
            await asyncio.sleep(0.01)

    async def _bootstrap_account(self) -> None:
        s = self.settings
        account_id = s.account_id or 1
        if s.api_key is not None:
            self.api_key = s.api_key.get_secret_value()
        elif not await self.store.account_exists(account_id):
            self.api_key = secrets.token_urlsafe(24)
            self.generated_key = True
        if self.api_key is not None:
            await self.store.ensure_account(account_id, s.account_name, self.api_key)
        self.account_id = account_id
        inbound = SCENARIOS_DIR / "inbound_ai.py"
        if s.bootstrap_inbound and inbound.exists():
            await self.store.ensure_default_inbound(account_id, inbound.read_text())

    def banner(self) -> list[str]:
        """Lines ``vgw serve`` prints: where it listens and the bootstrapped account."""
        s = self.settings
        lines = [
            f"voice-gateway listening: HTTP {s.http_base_url()} (platform_api at /platform_api)",
            f"SIP: udp+tcp {s.sip_host}:{self.sip.port} (advertised {s.sip_advertised_host()}), "
            f"RTP {s.rtp_port_min}-{s.rtp_port_max}",
        ]
        if self.generated_key:
            lines.append(f"account_id={self.account_id} api_key={self.api_key} "
                         "(generated now; set VGW_API_KEY to choose one)")
        elif s.api_key is not None:
            lines.append(f"account_id={self.account_id} api_key from VGW_API_KEY")
        else:
            lines.append(f"account_id={self.account_id} (existing API key kept)")
        lines.append(default_agent_line())
        return lines

    async def stop(self) -> None:
        await self.runtime.stop()
        await self.sip.stop()
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                await asyncio.wait_for(self._http_task, 10)
        if self._warmup is not None and not self._warmup.done():
            self._warmup.cancel()
        await speech.close_speech()
        await self.store.close()
