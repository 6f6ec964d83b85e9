"""Error replies of the Voximplant-compatible ``platform_api``.

Voximplant's HTTP API answers every failed call with HTTP 200 and a body
``{"error": {"code": N, "msg": "..."}}``; the official clients read only that body.
This gateway does the same (HTTP 500 is kept for its own internal failures).

Error code table (codes below 1000 are Voximplant's documented HTTP API codes with
their documented meaning; 9000-9099 are this gateway's own, for cases whose
Voximplant code is not documented):

====  ========================================  =================================================
code  msg (prefix)                              when
====  ========================================  =================================================
2     Internal error                            unexpected failure inside the gateway (HTTP 500)
100   Authorization failed                      missing/wrong ``account_id`` or ``api_key``;
                                                or a Bearer JWT that fails verification
                                                (unknown ``kid``, bad signature, expired,
                                                ``iat`` in the future, ``exp - iat`` > 3600,
                                                ``iss`` not the key's account; see
                                                :mod:`gateway.api.auth`)
101   Invalid arguments: <param> ...            a parameter is missing, ill-typed, out of range or
                                                invalid (bad regex), or the body is not valid
                                                JSON / form data; the msg names the parameter
102   Missing 'cmd' parameter                   ``POST /platform_api`` without ``cmd``
103   Unknown command: <cmd>                    ``cmd`` names no method of this gateway
111   Invalid date format: <param> ...          a date is not ``YYYY-MM-DD HH:MM:SS`` (UTC)
147   Invalid rule: ...                         the rule does not exist in the account
375   Rule has no scenarios: ...                StartScenarios on a rule with no scenario bound
9001  Invalid application: ...                  the application does not exist in the account
9002  Invalid scenario: ...                     the scenario does not exist in the account
9003  Name is not unique: ...                   application/scenario/rule name already taken
9004  Scenario does not compile: line N: ...    AddScenario/SetScenarioInfo with a SyntaxError
9005  script_custom_data is too long: ...       over 200 bytes (Voximplant's limit), or over
                                              ``custom_data_max_bytes`` when
                                              ``custom_data_voximplant_limit`` is off
9006  Session could not be started: ...         the runtime refused StartScenarios (limits, a
                                              stored scenario over 256 KiB, ...)
9010  Access denied: ...                        the service-account key's roles do not allow
                                                the method (see ``GetRoles``)
9011  Invalid key: ...                          the key does not exist in the account
9012  Invalid role: ...                         no role with that id or name (``GetRoles``)
9013  Invalid secret: ...                       the secret does not exist in the account
9099  Too many sessions: ...                    HTTP 429: StartScenarios over the in-flight limit
====  ========================================  =================================================
"""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError

INTERNAL_ERROR = 2
AUTHORIZATION_FAILED = 100
INVALID_ARGUMENTS = 101
MISSING_CMD = 102
UNKNOWN_COMMAND = 103
INVALID_DATE_FORMAT = 111
INVALID_RULE = 147
RULE_HAS_NO_SCENARIOS = 375
INVALID_APPLICATION = 9001
INVALID_SCENARIO = 9002
NAME_NOT_UNIQUE = 9003
SCENARIO_DOES_NOT_COMPILE = 9004
CUSTOM_DATA_TOO_LONG = 9005
SESSION_NOT_STARTED = 9006
ACCESS_DENIED = 9010
INVALID_KEY = 9011
INVALID_ROLE = 9012
INVALID_SECRET = 9013


class PlatformError(GatewayError):
    """A platform_api call failed; becomes ``{"error": {"code", "msg"}}``.

    Args:
        code: error code from the table in this module's docstring.
        msg: human readable message; names the offending parameter where there is one.
        http_status: HTTP status of the reply (200 like Voximplant, 500 for internal errors).
    """

    def __init__(self, code: int, msg: str, *, http_status: int = 200):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def body(self) -> dict[str, Any]:
        """The JSON reply body."""
        return {"error": {"code": self.code, "msg": self.msg}}


def invalid_argument(param: str, problem: str) -> PlatformError:
    """Error 101 naming ``param``, e.g. ``Invalid arguments: 'count' must be an integer``."""
    return PlatformError(INVALID_ARGUMENTS, f"Invalid arguments: '{param}' {problem}")


def missing_argument(*params: str) -> PlatformError:
    """Error 101 for a required parameter (or one of several alternatives) left out."""
    if len(params) == 1:
        return invalid_argument(params[0], "is required")
    names = " or ".join(f"'{p}'" for p in params)
    return PlatformError(INVALID_ARGUMENTS, f"Invalid arguments: {names} is required")
