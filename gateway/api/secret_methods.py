"""platform_api methods for secrets (Voximplant HTTP API: AddSecret, GetSecrets,
SetSecretInfo, DelSecret).

Scenarios read a secret with ``VoxEngine.get_secret_value(name)``, so API keys never
sit in scenario text. Secret values are write-only: no method returns them (there is
no ``GetSecretValue``; it answers 103) and they are never logged. Differences from
Voximplant: secrets belong to the account, not to one application; ``application_id``
/ ``application_name`` are accepted for compatibility and must name one of the
account's applications, but do not scope the secret. Storage at rest: see
:mod:`gateway.store.secrets` (encrypted with ``VGW_SECRETS_KEY`` when it is set).
"""

from __future__ import annotations

from typing import Any

from gateway.api.errors import INVALID_ARGUMENTS, PlatformError, missing_argument
from gateway.api.params import Params, format_date
from gateway.api.registry import PAGING_PARAMS, CallContext, ParamDoc, platform_method
from gateway.store.secrets import SecretInfo

NAME_MAX = 200
DESCRIPTION_MAX = 1000
#: Largest secret value, in characters.
VALUE_MAX = 65536

_APP_REF = [
    ParamDoc("application_id", "integer", "Accepted for compatibility: secrets belong to the "
             "account (must be one of its applications when given)."),
    ParamDoc("application_name", "string", "Instead of application_id (same remark)."),
]
_SECRET_REF = [
    ParamDoc("secret_id", "integer", "Secret id."),
    ParamDoc("secret_name", "string", "Secret name (instead of secret_id)."),
]


async def _check_application(ctx: CallContext, params: Params) -> None:
    """Validate the optional application reference (9001 when it is not the account's)."""
    app_id = params.integer("application_id")
    app_name = params.string("application_name", max_length=NAME_MAX)
    if app_id is not None or app_name is not None:
        await ctx.store.get_application(ctx.account.account_id, application_id=app_id,
                                        application_name=app_name)


def _secret_item(info: SecretInfo) -> dict[str, Any]:
    return {"secret_id": info.secret_id, "secret_name": info.secret_name,
            "description": info.description, "created": format_date(info.created),
            "modified": format_date(info.modified)}


def _secret_value(params: Params, *, required: bool) -> str | None:
    return params.string("secret_value", required=required, max_length=VALUE_MAX)


def _one_secret(params: Params) -> tuple[int | None, str | None]:
    secret_id = params.integer("secret_id")
    secret_name = params.string("secret_name", max_length=NAME_MAX)
    if secret_id is None and secret_name is None:
        raise missing_argument("secret_id", "secret_name")
    if secret_id is not None and secret_name is not None:
        raise PlatformError(INVALID_ARGUMENTS,
                            "Invalid arguments: pass either 'secret_id' or 'secret_name'")
    return secret_id, secret_name


@platform_method("AddSecret", "Add a secret that scenarios read with "
                 "VoxEngine.get_secret_value(name); its value is never returned.", [
    ParamDoc("secret_name", "string", "Secret name, unique in the account.", required=True),
    ParamDoc("secret_value", "string", "Secret value (write-only).", required=True),
    ParamDoc("description", "string", "Description."),
    *_APP_REF,
])
async def add_secret(ctx: CallContext, params: Params) -> dict[str, Any]:
    """AddSecret -> ``{"result": {"secret_id": N}}``."""
    name = params.string("secret_name", required=True, max_length=NAME_MAX)
    value = _secret_value(params, required=True)
    description = params.string("description", max_length=DESCRIPTION_MAX) or ""
    assert name is not None and value is not None
    await _check_application(ctx, params)
    info = await ctx.store.add_secret(ctx.account.account_id, name, value,
                                      description=description)
    return {"result": {"secret_id": info.secret_id}}


@platform_method("GetSecrets", "Get the account's secrets: names and descriptions, never "
                 "values.", [
    ParamDoc("secret_name_part", "string", "Only secrets whose name contains this."),
    *_APP_REF, *PAGING_PARAMS,
])
async def get_secrets(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetSecrets -> ``{"result": [SecretListItem...], "count", "total_count"}``."""
    offset, count = params.paging()
    part = params.string("secret_name_part", max_length=NAME_MAX)
    await _check_application(ctx, params)
    infos, total = await ctx.store.get_secrets(ctx.account.account_id, secret_name_part=part,
                                               offset=offset, count=count)
    items = [_secret_item(i) for i in infos]
    return {"result": items, "count": len(items), "total_count": total}


@platform_method("SetSecretInfo", "Rename a secret, or change its value or description.", [
    *_SECRET_REF,
    ParamDoc("new_secret_name", "string", "New name."),
    ParamDoc("secret_value", "string", "New value (write-only)."),
    ParamDoc("description", "string", "New description."),
    *_APP_REF,
])
async def set_secret_info(ctx: CallContext, params: Params) -> dict[str, Any]:
    """SetSecretInfo -> ``{"result": 1}``."""
    secret_id, secret_name = _one_secret(params)
    new_name = params.string("new_secret_name", max_length=NAME_MAX)
    value = _secret_value(params, required=False)
    description = params.string("description", allow_empty=True, max_length=DESCRIPTION_MAX)
    await _check_application(ctx, params)
    await ctx.store.set_secret_info(ctx.account.account_id, secret_id=secret_id,
                                    secret_name=secret_name, new_secret_name=new_name,
                                    secret_value=value, description=description)
    return {"result": 1}


@platform_method("DelSecret", "Delete secrets.", [
    ParamDoc("secret_id", "string", "Secret ids, ';'-separated."),
    ParamDoc("secret_name", "string", "Secret names, ';'-separated."),
    *_APP_REF,
])
async def del_secret(ctx: CallContext, params: Params) -> dict[str, Any]:
    """DelSecret -> ``{"result": 1}``."""
    ids = params.int_list("secret_id")
    names = params.str_list("secret_name")
    if not ids and not names:
        raise missing_argument("secret_id", "secret_name")
    await _check_application(ctx, params)
    await ctx.store.del_secrets(ctx.account.account_id, secret_ids=ids or (),
                                secret_names=names or ())
    return {"result": 1}
