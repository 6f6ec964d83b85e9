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
