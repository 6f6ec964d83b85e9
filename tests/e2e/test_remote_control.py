"""Remote session control over real HTTP: a StartScenarios session answers requests to its
media_session_access_url with whatever its AppEvents.HttpRequest handler returns."""

from __future__ import annotations

import json

import pytest

CONTROL = """
import asyncio, json
state = {"hits": 0}
async def on_http(e):
    state["hits"] += 1
    if e.path.startswith("/slow"):
        await asyncio.sleep(30)
    if e.path.startswith("/stop"):
        VoxEngine.terminate()
        return "bye"
    return {"custom": json.loads(VoxEngine.custom_data()), "method": e.method,
            "path": e.path, "body": e.content, "hits": state["hits"]}
VoxEngine.add_event_listener(AppEvents.HttpRequest, on_http)
"""


@pytest.mark.parametrize("e2e", [{"http_handler_timeout": 0.5}], indirect=True)
async def test_http_request_round_trip_deadline_and_ended_session(e2e):
    rule_id = await e2e.rule_with("control", CONTROL, name="control")
    started = await e2e.ok("StartScenarios", rule_id=rule_id,
                           script_custom_data=json.dumps({"lead": 42}))
    url = started["media_session_access_url"]
    assert len(url.rsplit("/", 1)[1]) >= 22  # >= 128 bits of URL-safe secret

    reply = await e2e.http.post(url + "/cmd?x=1", content=b"ping")
    assert reply.status_code == 200
    assert reply.json() == {"custom": {"lead": 42}, "method": "POST", "path": "/cmd?x=1",
                            "body": "ping", "hits": 1}

    slow = await e2e.http.get(url + "/slow")
    assert slow.status_code == 504

    wrong = await e2e.http.get(url[:-4] + "AAAA")
    assert wrong.status_code == 404

    bye = await e2e.http.get(url + "/stop")
    assert bye.status_code == 200 and bye.text == "bye"
    session = e2e.gw.runtime.find_session(url.split("/sessions/")[1].split("/")[0])
    await session.wait_ended(5)
    gone = await e2e.http.get(url)
    assert gone.status_code == 404


LOGGED = """
def on_started(e):
    Logger.write("remember", VoxEngine.custom_data())
    VoxEngine.terminate()
VoxEngine.add_event_listener(AppEvents.Started, on_started)
"""


async def test_session_log_is_linked_from_history_and_downloadable(e2e):
    rule_id = await e2e.rule_with("logged", LOGGED, name="logged")
    started = await e2e.ok("StartScenarios", rule_id=rule_id, script_custom_data="lead-7")
    sid = started["media_session_access_url"].split("/sessions/")[1].split("/")[0]
    session = e2e.gw.runtime.find_session(sid)
    await session.wait_ended(5)
    hist = await e2e.ok("GetCallHistory", call_session_history_id=started[
        "call_session_history_id"])
    url = hist["result"][0]["log_file_url"]
    assert url == f"{e2e.gw.settings.http_base_url()}/logs/{sid}"

    e2e.gw.runtime.recent.clear()  # served from the file written at the end
    reply = await e2e.http.get(url, params={"account_id": "1", "api_key": "e2e-key"})
    assert reply.status_code == 200
    assert "remember lead-7" in reply.text and "event AppEvents.Terminated" in reply.text

    denied = await e2e.http.get(url, params={"account_id": "1", "api_key": "wrong"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == 100
    missing = await e2e.http.get(url[:-4] + "0000", params={"account_id": "1",
                                                          "api_key": "e2e-key"})
    assert missing.status_code == 404
