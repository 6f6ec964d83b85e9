"""Secrets over platform_api (AddSecret, GetSecrets, SetSecretInfo, DelSecret): values are
write-only, never in a reply or a log line, per account, and encrypted at rest with
VGW_SECRETS_KEY."""

from __future__ import annotations

import logging

from cryptography.fernet import Fernet
from sqlalchemy import text

from tests.integration.api_support import (
    OTHER_ACCOUNT,
    ApiEnv,
    env,  # noqa: F401 (fixture)
    error_code,
)

VALUE = "sk-very-secret-value-0123456789"
OTHER_VALUE = "another-hidden-value-987654"


def raw_values(env: ApiEnv) -> list[str]:
    with env.store._engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT secret_value FROM secrets"))]


async def test_secret_lifecycle_never_returns_values(env: ApiEnv, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    replies = []
    added = await env.ok("AddSecret", secret_name="openai", secret_value=VALUE,
                         description="OpenAI key")
    replies.append(added)
    secret_id = added["result"]["secret_id"]
    listed = await env.ok("GetSecrets")
    replies.append(listed)
    (item,) = listed["result"]
    assert item["secret_id"] == secret_id and item["secret_name"] == "openai"
    assert item["description"] == "OpenAI key" and listed["total_count"] == 1
    assert set(item) == {"secret_id", "secret_name", "description", "created", "modified"}
    assert await env.store.secret_values(1) == {"openai": VALUE}

    replies.append(await env.ok("SetSecretInfo", secret_id=secret_id, new_secret_name="llm",
                                secret_value=OTHER_VALUE))
    assert await env.store.secret_values(1) == {"llm": OTHER_VALUE}
    replies.append(await env.ok("SetSecretInfo", secret_name="llm", description=""))
    replies.append(await env.ok("AddSecret", secret_name="other", secret_value=VALUE))
    filtered = await env.ok("GetSecrets", secret_name_part="ll")
    replies.append(filtered)
    assert [i["secret_name"] for i in filtered["result"]] == ["llm"]
    assert filtered["result"][0]["description"] == ""

    # errors name no value
    dup = await env.call("AddSecret", secret_name="llm", secret_value=VALUE)
    replies.append(dup)
    assert error_code(dup) == 9003
    assert error_code(await env.call("AddSecret", secret_name="x")) == 101
    assert error_code(await env.call("SetSecretInfo", secret_name="nope",
                                     secret_value=VALUE)) == 9013
    assert error_code(await env.call("GetSecretValue", secret_name="llm")) == 103
    assert error_code(await env.call("AddSecret", secret_name="y", secret_value=VALUE,
                                     application_id=999)) == 9001

    replies.append(await env.ok("DelSecret", secret_name="llm;other"))
    assert (await env.ok("GetSecrets"))["total_count"] == 0
    assert await env.store.secret_values(1) == {}
    assert error_code(await env.call("DelSecret", secret_id=secret_id)) == 9013

    for body in replies:
        assert VALUE not in str(body) and OTHER_VALUE not in str(body)
    assert VALUE not in caplog.text and OTHER_VALUE not in caplog.text


async def test_secrets_are_per_account(env: ApiEnv) -> None:
    mine = await env.ok("AddSecret", secret_name="k", secret_value=VALUE)
    await env.ok("AddSecret", auth=OTHER_ACCOUNT, secret_name="k", secret_value=OTHER_VALUE)
    assert await env.store.secret_values(1) == {"k": VALUE}
    assert await env.store.secret_values(2) == {"k": OTHER_VALUE}
    their_list = await env.ok("GetSecrets", auth=OTHER_ACCOUNT)
    assert their_list["total_count"] == 1
    theirs_id = their_list["result"][0]["secret_id"]
    assert theirs_id != mine["result"]["secret_id"]
    assert error_code(await env.call("SetSecretInfo", secret_id=theirs_id,
                                     secret_value="x")) == 9013
    assert error_code(await env.call("DelSecret", secret_id=theirs_id)) == 9013
    assert await env.store.secret_values(2) == {"k": OTHER_VALUE}


async def test_values_are_encrypted_at_rest_with_the_secrets_key(env: ApiEnv) -> None:
    await env.ok("AddSecret", secret_name="plain", secret_value=VALUE)
    assert raw_values(env) == [f"plain:{VALUE}"]  # no key: plain text, documented

    env.store.set_secrets_key(Fernet.generate_key().decode())
    await env.ok("AddSecret", secret_name="sealed", secret_value=OTHER_VALUE)
    stored = raw_values(env)
    assert stored[1].startswith("fernet:") and OTHER_VALUE not in stored[1]
    assert await env.store.secret_values(1) == {"plain": VALUE, "sealed": OTHER_VALUE}
    await env.ok("SetSecretInfo", secret_name="plain", secret_value=VALUE)  # re-sealed
    assert all(v.startswith("fernet:") and VALUE not in v for v in raw_values(env))

    env.store.set_secrets_key("some other passphrase, not a Fernet key")
    assert await env.store.secret_values(1) == {}  # undecryptable values are left out
    env.store.set_secrets_key(None)
    assert await env.store.secret_values(1) == {}
