"""``vgw scenarios push``, ``vgw start`` and ``vgw history`` against a running gateway."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from gateway.cli import app
from tests.e2e.conftest import API_KEY
from tests.e2e.helpers import session_id_of, wait_until

SCENARIO = """
import json
def on_started(e):
    data = json.loads(VoxEngine.custom_data())
    Logger.write("pushed scenario got", data["greeting"])
    VoxEngine.terminate()
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def vgw(e2e, *args: str) -> str:
    env = {"VGW_URL": e2e.gw.settings.http_base_url(), "VGW_ACCOUNT_ID": "1",
           "VGW_API_KEY": API_KEY, "VGW_CREDENTIALS": ""}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


async def test_push_start_and_history(e2e, tmp_path):
    script = tmp_path / "greeter.py"
    script.write_text(SCENARIO)
    out = await vgw(e2e, "scenarios", "push", str(script), "--rule", "greet")
    assert "new rule 'greet'" in out
    script.write_text(SCENARIO.replace("pushed scenario got", "updated scenario got"))
    out = await vgw(e2e, "scenarios", "push", str(script), "--rule", "greet")
    assert "pushed and bound to rule 'greet'" in out
    (sc,) = (await e2e.ok("GetScenarios", scenario_name="greeter", with_script="true"))["result"]
    assert "updated scenario got" in sc["scenario_script"]

    out = await vgw(e2e, "start", "greet", "--data", '{"greeting": "hi"}')
    url = out.strip().splitlines()[0]
    assert url.startswith("http://127.0.0.1:") and "/sessions/" in url
    sid = session_id_of(url)
    await wait_until(lambda: (s := e2e.gw.runtime.find_session(sid)) is not None and s.ended,
                     5, "the session to end")
    assert any("updated scenario got hi" in line
               for line in e2e.gw.runtime.find_session(sid).log_lines)

    out = await vgw(e2e, "history", "--count", "5")
    assert "greet" in out and "1 of 1 sessions" in out


async def test_keys_create_then_jwt_auth_from_the_credentials_file(e2e, tmp_path):
    creds = tmp_path / "key.json"
    out = await vgw(e2e, "keys", "create", "--description", "ci", "--role", "Viewer",
                    "--out", str(creds))
    assert "written to" in out
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    data = json.loads(creds.read_text())
    assert data["account_id"] == 1 and "BEGIN" in data["private_key"]

    env = {"VGW_URL": e2e.gw.settings.http_base_url(), "VGW_ACCOUNT_ID": "",
           "VGW_API_KEY": "", "VGW_CREDENTIALS": str(creds)}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["history"], env=env)
    assert result.exit_code == 0, result.output
    assert "0 of 0 sessions" in result.output
    # a Viewer key may not upload code
    script = tmp_path / "x.py"
    script.write_text("pass\n")
    result = await asyncio.to_thread(CliRunner().invoke, app,
                                     ["scenarios", "push", str(script), "--rule", "x"], env=env)
    assert result.exit_code == 1 and "9010" in result.output
