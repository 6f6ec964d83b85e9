"""Service-account keys over platform_api: CreateKey's credentials, Bearer JWTs, key and
role management (Voximplant RoleSystem methods) and per-method role enforcement."""

from __future__ import annotations

import time
from typing import Any

import jwt
from sqlalchemy import text

from gateway.api.registry import METHODS
from gateway.store.keys import Permission
from tests.integration.api_support import (
    OTHER_ACCOUNT,
    ApiEnv,
    env,  # noqa: F401 (fixture)
    error_code,
)


def bearer(creds: dict[str, Any], **claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"iss": str(creds["account_id"]), "iat": now - 5, "exp": now + 24, **claims}
    tok = jwt.encode(body, creds["private_key"], algorithm="RS256",
                     headers={"kid": creds["key_id"]})
    return {"Authorization": f"Bearer {tok}"}


async def as_key(env: ApiEnv, creds: dict[str, Any], cmd: str, **params: Any) -> dict[str, Any]:
    """POST ``cmd`` form-encoded with only a Bearer JWT (as voximplant-apiclient does)."""
    reply = await env.client.post("/platform_api", headers=bearer(creds),
                                  data={"cmd": cmd, **{k: str(v) for k, v in params.items()}})
    assert reply.status_code == 200, reply.text
    return reply.json()


async def create_key(env: ApiEnv, **params: Any) -> dict[str, Any]:
    return (await env.ok("CreateKey", **params))["result"]


async def test_create_key_returns_voximplant_credentials_and_stores_only_public_key(
        env: ApiEnv) -> None:
    creds = await create_key(env, description="backend", role_name="Developer")
    assert set(creds) == {"account_id", "account_email", "key_id", "private_key"}
    assert creds["account_id"] == 1
    assert creds["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    # the JWT it signs works at once
    apps = await as_key(env, creds, "GetApplications")
    assert apps["total_count"] == 0
    # only the public key is kept; GetKeys never shows key material
    engine = env.store._engine
    with engine.connect() as conn:
        (stored,) = conn.execute(text("SELECT public_key FROM api_keys")).one()
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM api_keys")))
    assert stored.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in dump
    keys = await env.ok("GetKeys", with_roles="true")
    (item,) = keys["result"]
    assert item["key_id"] == creds["key_id"] and item["description"] == "backend"
    assert item["roles"] == [{"role_id": 2, "role_name": "Developer"}]
    assert keys["total_count"] == 1
    assert "private_key" not in str(keys) and "BEGIN" not in str(keys)


async def test_key_management_methods(env: ApiEnv) -> None:
    creds = await create_key(env, role_id="3")
    key_id = creds["key_id"]
    assert (await env.ok("UpdateKey", key_id=key_id, description="renamed",
                         key_name="ci"))["result"] == 1
    roles = await env.ok("GetRoles")
    assert [r["role_name"] for r in roles["result"]] == ["Owner", "Developer", "Viewer"]
    assert (await env.ok("SetKeyRoles", key_id=key_id, role_name="Developer;Owner"))["result"]
    got = await env.ok("GetKeyRoles", key_id=key_id)
    assert sorted(r["role_name"] for r in got["result"]) == ["Developer", "Owner", "Viewer"]
    assert await env.ok("RemoveKeyRoles", key_id=key_id, role_id="1;3")
    got = await env.ok("GetKeyRoles", key_id=key_id)
    assert got["result"] == [{"role_id": 2, "role_name": "Developer"}]
    (item,) = (await env.ok("GetKeys", key_id=key_id))["result"]
    assert item["description"] == "renamed" and item["key_name"] == "ci" and "roles" not in item
    # errors: unknown role, unknown key, missing arguments
    assert error_code(await env.call("SetKeyRoles", key_id=key_id, role_name="Boss")) == 9012
    assert error_code(await env.call("SetKeyRoles", key_id=key_id, role_id="99")) == 9012
    assert error_code(await env.call("GetKeyRoles", key_id="nope")) == 9011
    assert error_code(await env.call("SetKeyRoles", key_id=key_id)) == 101
    assert error_code(await env.call("UpdateKey", key_id=key_id)) == 101
    assert error_code(await env.call("CreateKey", role_id="1", role_name="Owner")) == 101
    # DeleteKey: tokens it signs are refused at once
    assert await as_key(env, creds, "GetApplications")
    assert (await env.ok("DeleteKey", key_id=key_id))["result"] == 1
    assert error_code(await as_key(env, creds, "GetApplications")) == 100
    assert error_code(await env.call("DeleteKey", key_id=key_id)) == 9011


async def test_keys_are_per_account(env: ApiEnv) -> None:
    mine = await create_key(env, role_name="Owner")
    theirs = (await env.ok("CreateKey", auth=OTHER_ACCOUNT, role_name="Owner"))["result"]
    assert theirs["account_id"] == 2
    assert (await env.ok("GetKeys"))["total_count"] == 1
    for cmd, extra in [("GetKeyRoles", {}), ("DeleteKey", {}), ("UpdateKey", {"description": "x"}),
                       ("SetKeyRoles", {"role_id": "3"}), ("RemoveKeyRoles", {"role_id": "1"})]:
        assert error_code(await env.call(cmd, key_id=theirs["key_id"], **extra)) == 9011, cmd
        assert error_code(await as_key(env, mine, cmd, key_id=theirs["key_id"], **extra)) == 9011
    # a key signs for its own account only; iss naming another account is refused
    assert error_code(await as_key(env, mine, "GetApplications",
                                   account_id="2")) == 100
    reply = await env.client.post("/platform_api/GetApplications/",
                                  headers=bearer(mine, iss="2"))
    assert error_code(reply.json()) == 100
    await env.ok("AddApplication", auth=OTHER_ACCOUNT, application_name="theirs")
    assert (await as_key(env, mine, "GetApplications"))["total_count"] == 0
    assert (await as_key(env, theirs, "GetApplications"))["total_count"] == 1


async def test_viewer_reads_and_starts_but_cannot_change_anything(env: ApiEnv) -> None:
    app = await env.ok("AddApplication", application_name="ivr")
    sc = await env.ok("AddScenario", scenario_name="s", scenario_script="X = 1\n")
    rule = await env.ok("AddRule", application_id=app["application_id"], rule_name="main",
                        rule_pattern=".*", scenario_id=sc["scenario_id"])
    viewer = await create_key(env, role_name="Viewer")
    for cmd, params in [("GetApplications", {}), ("GetScenarios", {}), ("GetRules", {}),
                        ("GetCallHistory", {"from_date": "2020-01-01 00:00:00",
                                            "to_date": "2099-01-01 00:00:00"}),
                        ("GetSecrets", {}), ("GetRoles", {}),
                        ("StartScenarios", {"rule_id": rule["rule_id"]})]:
        body = await as_key(env, viewer, cmd, **params)
        assert "error" not in body, (cmd, body)
    denied = [("AddApplication", {"application_name": "x"}),
              ("AddScenario", {"scenario_name": "y", "scenario_script": "Y = 2\n"}),
              ("SetScenarioInfo", {"scenario_id": sc["scenario_id"], "scenario_script": "Z=1"}),
              ("DelRule", {"rule_id": rule["rule_id"]}),
              ("AddSecret", {"secret_name": "k", "secret_value": "v"}),
              ("CreateKey", {}), ("GetKeys", {})]
    for cmd, params in denied:
        body = await as_key(env, viewer, cmd, **params)
        assert error_code(body) == 9010, (cmd, body)
        assert cmd in body["error"]["msg"]
    assert (await env.ok("GetScenarios", with_script="true"))["result"][0][
        "scenario_script"] == "X = 1\n"  # nothing changed


async def test_developer_uploads_code_but_cannot_manage_keys(env: ApiEnv) -> None:
    dev = await create_key(env, role_name="Developer")
    app = await as_key(env, dev, "AddApplication", application_name="dev-app")
    assert app["result"] == 1
    sc = await as_key(env, dev, "AddScenario", scenario_name="s", scenario_script="X = 1\n")
    assert sc["result"] == 1
    assert (await as_key(env, dev, "AddSecret", secret_name="k", secret_value="v"))["result"]
    for cmd in ("CreateKey", "GetKeys", "SetKeyRoles", "DeleteKey"):
        assert error_code(await as_key(env, dev, cmd, key_id=dev["key_id"],
                                       role_id="1")) == 9010, cmd
    owner = await create_key(env, role_name="Owner")
    made = await as_key(env, owner, "CreateKey", role_name="Viewer")
    assert made["result"]["key_id"]
    assert (await as_key(env, owner, "GetKeys"))["total_count"] == 3


async def test_key_without_role_may_call_nothing(env: ApiEnv) -> None:
    bare = await create_key(env)
    assert error_code(await as_key(env, bare, "GetApplications")) == 9010
    await env.ok("SetKeyRoles", key_id=bare["key_id"], role_name="Viewer")
    assert "error" not in await as_key(env, bare, "GetApplications")


async def test_every_method_declares_a_permission() -> None:
    for spec in METHODS.values():
        assert spec.permission in (Permission.READ, Permission.WRITE, Permission.ADMIN)
        if spec.name.startswith(("Add", "Set", "Del", "Reorder", "Bind", "Update", "Create",
                                 "Delete", "Remove")):
            assert spec.permission >= Permission.WRITE, spec.name
    assert METHODS["AddScenario"].permission == Permission.WRITE
    assert METHODS["SetScenarioInfo"].permission == Permission.WRITE
    assert METHODS["StartScenarios"].permission == Permission.READ
    assert METHODS["CreateKey"].permission == Permission.ADMIN


async def test_openapi_documents_the_required_role(env: ApiEnv) -> None:
    schema = (await env.client.get("/openapi.json")).json()
    op = schema["paths"]["/platform_api/AddScenario/"]["post"]
    assert "write permission" in op["description"] and "Developer" in op["description"]
    assert "Viewer" not in op["description"]
    for name in ("CreateKey", "GetKeys", "UpdateKey", "DeleteKey", "SetKeyRoles", "GetKeyRoles",
                 "RemoveKeyRoles", "GetRoles", "AddSecret", "GetSecrets", "SetSecretInfo",
                 "DelSecret"):
        assert f"/platform_api/{name}/" in schema["paths"], name
