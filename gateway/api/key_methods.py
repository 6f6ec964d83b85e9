"""platform_api methods for service-account keys and roles (Voximplant HTTP API,
RoleSystem: CreateKey, GetKeys, UpdateKey, DeleteKey, SetKeyRoles, GetKeyRoles,
RemoveKeyRoles, GetRoles).

CreateKey makes an RSA-2048 key pair, stores only the public key and answers with
Voximplant's credentials JSON (``account_id``, ``account_email``, ``key_id``,
``private_key`` in PEM) as ``result``: save it to a file and hand it to
``voximplant.apiclient.VoximplantAPI``. The private key is never shown again.

Roles are fixed (see :data:`gateway.store.keys.ROLES` and ``GetRoles``): Owner, Developer,
Viewer. Differences from Voximplant: ``account_email`` is empty (accounts have no
e-mail here); a key with no role may call nothing; role groups do not exist
(``GetRoles``'s ``group_name`` is accepted and ignored).
"""

from __future__ import annotations

import asyncio
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.api.errors import INVALID_ARGUMENTS, PlatformError, missing_argument
from gateway.api.params import Params, format_date
from gateway.api.registry import PAGING_PARAMS, CallContext, ParamDoc, platform_method
from gateway.store import NotFound
from gateway.store.keys import ROLES, KeyInfo, Permission, Role, role_by_id, role_by_name

KEY_NAME_MAX = 50
DESCRIPTION_MAX = 1000
RSA_KEY_BITS = 2048

_ROLE_REF = [
    ParamDoc("role_id", "string", "Role ids, ';'-separated (see GetRoles)."),
    ParamDoc("role_name", "string", "Role names, ';'-separated (instead of role_id)."),
]
_KEY_ID = ParamDoc("key_id", "string", "Key id (the JWT `kid`).", required=True)


def new_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair as ``(private key PEM, public key PEM)``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode("ascii")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return private_pem, public_pem


def _roles_param(params: Params, *, required: bool) -> list[int]:
    """Role ids from ``role_id`` or ``role_name`` (not both).

    Raises:
        PlatformError: 101 when both or (if required) neither is given; 9012 via
            ``NotFound("role")`` for an unknown role.
    """
    ids = params.int_list("role_id")
    names = params.str_list("role_name")
    if ids is not None and names is not None:
        raise PlatformError(INVALID_ARGUMENTS,
                            "Invalid arguments: pass either 'role_id' or 'role_name'")
    if ids is None and names is None:
        if required:
            raise missing_argument("role_id", "role_name")
        return []
    if ids is not None:
        return [role_by_id(i).role_id for i in ids]
    assert names is not None
    return [role_by_name(n).role_id for n in names]


def _role_item(role: Role) -> dict[str, Any]:
    return {"role_id": role.role_id, "role_name": role.role_name}


def _key_item(key: KeyInfo, with_roles: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"key_id": key.key_id, "key_name": key.key_name,
                            "description": key.description, "created": format_date(key.created)}
    if with_roles:
        item["roles"] = [_role_item(r) for r in key.roles]
    return item


def _key_id(params: Params) -> str:
    key_id = params.string("key_id", required=True, max_length=64)
    assert key_id is not None
    return key_id.strip()


@platform_method("CreateKey", "Create a service-account key pair; returns the credentials "
                 "JSON (with the private key, shown only this once).", [
    ParamDoc("description", "string", "The key's description."),
    ParamDoc("key_name", "string", "The key's name, up to 50 characters."),
    *_ROLE_REF,
], permission=Permission.ADMIN)
async def create_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    """CreateKey -> ``{"result": {account_id, account_email, key_id, private_key}}``."""
    description = params.string("description", max_length=DESCRIPTION_MAX) or ""
    key_name = params.string("key_name", max_length=KEY_NAME_MAX) or ""
    role_ids = _roles_param(params, required=False)
    private_pem, public_pem = await asyncio.to_thread(new_key_pair)
    key = await ctx.store.add_key(ctx.account.account_id, public_pem, key_name=key_name,
                                  description=description, role_ids=role_ids)
    return {"result": {"account_id": ctx.account.account_id, "account_email": "",
                       "key_id": key.key_id, "private_key": private_pem}}


@platform_method("GetKeys", "Get the account's service-account keys (never private keys).", [
    ParamDoc("key_id", "string", "Only this key."),
    ParamDoc("with_roles", "boolean", "Include each key's roles."),
    *PAGING_PARAMS,
], permission=Permission.ADMIN)
async def get_keys(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetKeys -> ``{"result": [KeyView...], "count", "total_count"}``."""
    offset, count = params.paging()
    key_id = params.string("key_id", max_length=64)
    keys, total = await ctx.store.get_keys(ctx.account.account_id, key_id=key_id,
                                           offset=offset, count=count)
    with_roles = params.boolean("with_roles")
    items = [_key_item(k, with_roles) for k in keys]
    return {"result": items, "count": len(items), "total_count": total}


@platform_method("UpdateKey", "Change a key's description (and name).", [
    _KEY_ID,
    ParamDoc("description", "string", "The key's new description.", required=True),
    ParamDoc("key_name", "string", "The key's new name, up to 50 characters."),
], permission=Permission.ADMIN)
async def update_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    """UpdateKey -> ``{"result": 1}``."""
    key_id = _key_id(params)
    description = params.string("description", allow_empty=True, max_length=DESCRIPTION_MAX)
    if description is None:
        raise missing_argument("description")
    key_name = params.string("key_name", max_length=KEY_NAME_MAX)
    await ctx.store.update_key(ctx.account.account_id, key_id, description=description,
                               key_name=key_name)
    return {"result": 1}


@platform_method("DeleteKey", "Delete a key; tokens it signs are refused at once.", [
    _KEY_ID,
], permission=Permission.ADMIN)
async def delete_key(ctx: CallContext, params: Params) -> dict[str, Any]:
    """DeleteKey -> ``{"result": 1}``."""
    await ctx.store.delete_key(ctx.account.account_id, _key_id(params))
    return {"result": 1}


@platform_method("SetKeyRoles", "Add roles to a key.", [
    _KEY_ID, *_ROLE_REF,
], permission=Permission.ADMIN)
async def set_key_roles(ctx: CallContext, params: Params) -> dict[str, Any]:
    """SetKeyRoles -> ``{"result": 1}``."""
    key_id = _key_id(params)
    await ctx.store.set_key_roles(ctx.account.account_id, key_id,
                                  _roles_param(params, required=True))
    return {"result": 1}


@platform_method("RemoveKeyRoles", "Remove roles from a key.", [
    _KEY_ID, *_ROLE_REF,
], permission=Permission.ADMIN)
async def remove_key_roles(ctx: CallContext, params: Params) -> dict[str, Any]:
    """RemoveKeyRoles -> ``{"result": 1}``."""
    key_id = _key_id(params)
    await ctx.store.set_key_roles(ctx.account.account_id, key_id,
                                  _roles_param(params, required=True), remove=True)
    return {"result": 1}


@platform_method("GetKeyRoles", "Get a key's roles.", [
    _KEY_ID,
    ParamDoc("with_expanded_roles", "boolean", "Accepted for compatibility; roles here have "
             "no children."),
], permission=Permission.ADMIN)
async def get_key_roles(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetKeyRoles -> ``{"result": [RoleView...]}``."""
    key_id = _key_id(params)
    params.boolean("with_expanded_roles")
    keys, _ = await ctx.store.get_keys(ctx.account.account_id, key_id=key_id, count=1)
    if not keys:
        raise NotFound("key", key_id)
    return {"result": [_role_item(r) for r in keys[0].roles]}


@platform_method("GetRoles", "Get every role a key can hold.", [
    ParamDoc("group_name", "string", "Accepted for compatibility (no role groups here)."),
], permission=Permission.READ)
async def get_roles(ctx: CallContext, params: Params) -> dict[str, Any]:
    """GetRoles -> ``{"result": [{role_id, role_name, description}...]}``."""
    params.string("group_name", max_length=200)
    return {"result": [{**_role_item(r), "description": r.description} for r in ROLES]}
