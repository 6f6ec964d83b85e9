"""The official ``voximplant-apiclient``, unmodified, against a whole gateway served over
HTTPS on 127.0.0.1 with a test CA (trustme, ``REQUESTS_CA_BUNDLE``).

It authenticates with a service-account key made by CreateKey (RS256 JWTs it signs
itself), builds an application, scenario and rule, starts an outbound session that
calls a real sipp UAS (-rtp_echo) bridged to the fake realtime server, reads the
session back from GetCallHistory, edits the configuration, and sees forged tokens
(expired, wrong kid, tampered signature) refused with code 100.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import trustme
from voximplant.apiclient import VoximplantAPI, VoximplantException

from gateway.media.g711 import pcm16_to_ulaw
from gateway.server import Gateway
from tests.audio import speech
from tests.e2e.conftest import API_KEY, make_settings, shipped
from tests.e2e.helpers import wait_until
from tests.fakes.fake_openai_realtime import FakeRealtimeServer
from tests.integration.sip_harness import sipp, wait_sipp_listening

SECRET_VALUE = "s3cr3t-greeting-value"
HELPER_SCRIPT = 'SECRET_SEEN = VoxEngine.get_secret_value("greeting")\n'


def make_tls(tmp: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for 127.0.0.1: ``(ca, cert chain, key)`` PEM files."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


def forged(creds: dict[str, Any], *, kid: str | None = None, iat: int | None = None,
           exp: int | None = None) -> str:
    now = int(time.time())
    claims = {"iss": str(creds["account_id"]), "iat": now - 5 if iat is None else iat,
              "exp": now + 24 if exp is None else exp}
    return jwt.encode(claims, creds["private_key"], algorithm="RS256",
                      headers={"kid": kid or creds["key_id"]})


def tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[-1] ^= 0x01
    return f"{head}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.fake_mode("script")
async def test_official_client_over_https_with_service_account_key(
        fake_ai: FakeRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_path, cert_path, key_path = make_tls(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))
    settings = make_settings(tmp_path, tls_cert=str(cert_path), tls_key=str(key_path))
    gw = Gateway(settings)
    await gw.start()
    try:
        base = settings.http_base_url()
        assert base.startswith("https://127.0.0.1:")
        port = gw.http_port
        trust = ssl.create_default_context(cafile=str(ca_path))
        async with httpx.AsyncClient(base_url=base, verify=trust, timeout=10) as http:
            # a key made through the legacy account_id + api_key auth
            made = (await http.post("/platform_api/CreateKey/", data={
                "account_id": "1", "api_key": API_KEY, "description": "backend",
                "role_name": "Developer"})).json()
            creds = made["result"]
            creds_path = tmp_path / "credentials.json"
            creds_path.write_text(json.dumps(creds))
            await _drive_official_client(gw, fake_ai, tmp_path, creds_path, port)

            # forged tokens, sent the way the client sends them
            async def with_token(token: str) -> dict[str, Any]:
                reply = await http.post("/platform_api", data={"cmd": "GetApplications"},
                                        headers={"Authorization": f"Bearer {token}"})
                return reply.json()

            assert "error" not in await with_token(forged(creds))
            now = int(time.time())
            expired = forged(creds, iat=now - 400, exp=now - 300)
            wrong_kid = forged(creds, kid="00000000-0000-4000-8000-000000000000")
            for token in (expired, wrong_kid, tampered(forged(creds))):
                body = await with_token(token)
                assert body == {"error": {"code": 100, "msg": "Authorization failed"}}, body
        # plain http on the TLS port is not served
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(f"http://127.0.0.1:{port}/platform_api",
                                 data={"cmd": "GetApplications"})
    finally:
        await gw.stop()


async def _drive_official_client(gw: Gateway, fake: FakeRealtimeServer, tmp_path: Path,
                                 creds_path: Path, port: int) -> None:
    api = VoximplantAPI(str(creds_path), endpoint=f"127.0.0.1:{port}")

    async def call(method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # the client is synchronous (httpx); the gateway runs on this event loop
        return await asyncio.to_thread(getattr(api, method), *args, **kwargs)

    app = await call("add_application", "vox-e2e")
    app_id = app["application_id"]
    sc = await call("add_scenario", "outbound", scenario_script=shipped("outbound_ai.py"))
    secret = await call("add_secret", "greeting", SECRET_VALUE, description="for the scenario")
    assert secret["result"]["secret_id"]
    listed = await call("get_secrets")
    assert [i["secret_name"] for i in listed["result"]] == ["greeting"]
    assert SECRET_VALUE not in str(listed)
    helper = await call("add_scenario", "helper", scenario_script=HELPER_SCRIPT)
    rule = await call("add_rule", "outbound", "outbound", application_id=app_id,
                      scenario_id=[sc["scenario_id"], helper["scenario_id"]])
    rule_id = rule["rule_id"]

    async with sipp(tmp_path, "-sn", "uas", "-rtp_echo") as uas:
        await wait_sipp_listening(uas.port)
        data = {"destination": f"sip:bot@127.0.0.1:{uas.port}", "callerId": "+15550001111"}
        started = await call("start_scenarios", rule_id=rule_id,
                             script_custom_data=json.dumps(data))
        assert started["result"] == 1
        assert started["media_session_access_url"].startswith(f"https://127.0.0.1:{port}/")
        assert started["media_session_access_secure_url"].startswith("https://")
        hid = started["call_session_history_id"]
        await fake.wait_connected(10)
        await fake.wait_until(lambda: fake.output_format.get("type") == "audio/pcmu", timeout=5)
        source = speech("hello-world", "agent-pass")
        await fake.play_audio(pcm16_to_ulaw(source), chunk_ms=200)
        await fake.wait_audio(8000, timeout=15)  # sipp's echo reached the AI
        await fake.close_connection(1000, "done")  # the scenario hangs up
        assert await uas.wait(20) == 0, uas.logs()
    await wait_until(lambda: not gw.runtime.sessions, 10, "the session to end")
    ended = next(x for x in gw.runtime.recent if x.record.call_session_history_id == hid)
    assert ended.namespace["SECRET_SEEN"] == SECRET_VALUE  # VoxEngine.get_secret_value

    now = datetime.now(UTC)
    hist = await call("get_call_history", from_date=now - timedelta(hours=1),
                      to_date=now + timedelta(hours=1), call_session_history_id=hid,
                      with_calls=True)
    (sess,) = hist["result"]
    assert sess["call_session_history_id"] == hid and sess["rule_name"] == "outbound"
    assert isinstance(sess["start_date"], datetime)  # parsed by the client
    (leg,) = sess["calls"]
    assert leg["successful"] and not leg["incoming"] and "bot" in leg["remote_number"]

    scenarios = await call("get_scenarios")
    assert {s["scenario_name"] for s in scenarios["result"]} == {"outbound", "helper"}
    assert (await call("set_scenario_info", scenario_id=helper["scenario_id"],
                       scenario_script=HELPER_SCRIPT + "HELPER = 2\n"))["result"] == 1
    assert (await call("reorder_scenarios", [helper["scenario_id"], sc["scenario_id"]],
                       rule_id=rule_id))["result"] == 1
    rules = await call("get_rules", rule_id=rule_id, with_scenarios=True)
    assert [s["scenario_id"] for s in rules["result"][0]["scenarios"]] == [
        helper["scenario_id"], sc["scenario_id"]]
    assert (await call("del_rule", rule_id=rule_id))["result"] == 1
    assert (await call("get_rules", application_id=app_id))["total_count"] == 0

    # the Developer key may not manage keys; the client raises the gateway's error
    with pytest.raises(VoximplantException) as denied:
        await call("create_key", role_name="Owner")
    assert denied.value.code == 9010


async def test_tls_settings_switch_urls_to_https(tmp_path: Path) -> None:
    plain = make_settings(tmp_path)
    assert not plain.tls_enabled() and plain.http_base_url().startswith("http://")
    _, cert, key = make_tls(tmp_path)
    tls = make_settings(tmp_path, http_port=8443, tls_cert=str(cert), tls_key=str(key))
    assert tls.tls_enabled() and tls.http_base_url() == "https://127.0.0.1:8443"
    half = make_settings(tmp_path, tls_cert=str(cert))
    assert not half.tls_enabled()
    with pytest.raises(ValueError, match="VGW_TLS_CERT and VGW_TLS_KEY"):
        await Gateway(half).start()
