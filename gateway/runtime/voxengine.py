"""The ``VoxEngine`` object in scenario globals (VoxEngine's API in snake_case).

Each session gets its own facade; every method acts on that session only. After
``AppEvents.Terminated`` every method raises ``SessionEndedError`` (VoxEngine's rule:
only ``Logger.write`` works then); no new call may be placed once termination started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.runtime.call import Call
from gateway.runtime.leg import DigestCredentials
from gateway.runtime.media_unit import MediaUnit
from gateway.runtime.voxengine_control import CallControlFactories
from gateway.runtime.voxengine_media import MediaFactories

if TYPE_CHECKING:
    from gateway.runtime.events import Handler
    from gateway.runtime.session import Session


class VoxEngineFacade(MediaFactories, CallControlFactories):
    """Session-level control: events, custom data, outbound calls, media routing; media
    units (players, ASR, conferences: :class:`MediaFactories`) and B2BUA helpers
    (:class:`CallControlFactories`)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_event_listener(self, event: str, handler: Handler) -> None:
        """Subscribe to an ``AppEvents.*`` event of this session."""
        self._session.check_alive("VoxEngine.add_event_listener")
        self._session.add_event_listener(event, handler)

    def remove_event_listener(self, event: str, handler: Handler | None = None) -> None:
        """Unsubscribe ``handler`` (or all handlers) from an ``AppEvents.*`` event."""
        self._session.check_alive("VoxEngine.remove_event_listener")
        self._session.remove_event_listener(event, handler)

    def custom_data(self) -> str:
        """``script_custom_data`` passed to StartScenarios ("" when none)."""
        self._session.check_alive("VoxEngine.custom_data")
        return self._session.custom_data or ""

    def get_secret_value(self, name: str) -> str:
        """Value of the account's secret ``name`` (added with the AddSecret API method).

        Raises:
            KeyError: no secret of that name.
        """
        self._session.check_alive("VoxEngine.get_secret_value")
        try:
            return self._session.secrets[name]
        except KeyError:
            raise KeyError(f"no secret named {name!r}") from None

    def session_id(self) -> str:
        """This session's id."""
        self._session.check_alive("VoxEngine.session_id")
        return self._session.id

    def call_sip(self, to: str, callerid: str | dict[str, Any] | None = None, *,
                 display_name: str = "", headers: dict[str, str] | None = None,
                 auth_user: str | None = None, password: str | None = None) -> Call:
        """Place an outbound SIP call to URI ``to``; returns the Call at once.

        ``callerid`` may also be VoxEngine's parameters object
        (``{"callerid", "displayName", "headers", "authUser", "password"}``).
        Events (``Ringing``, ``Connected``, ``Failed``) follow; an unanswered
        call fails with 408 after the answer timeout (60 s).

        At most 50 call attempts per session and 10 unanswered calls at once: the call
        over a limit fails (asynchronously) with 403 "Call limit reached".

        Raises:
            ValueError: ``to`` is not a sip:/sips: URI.
            SessionEndedError: the session is terminating or has ended.
        """
        self._check_can_call("VoxEngine.call_sip")
        if isinstance(callerid, dict):
            opts = callerid
            callerid = opts.get("callerid")
            display_name = opts.get("displayName", opts.get("display_name", display_name))
            headers = opts.get("headers", headers)
            auth_user = opts.get("authUser", opts.get("auth_user", auth_user))
            password = opts.get("password", password)
        if not isinstance(to, str) or not to.lower().startswith(("sip:", "sips:")):
            raise ValueError(f"call_sip: {to!r} is not a SIP URI")
        auth = DigestCredentials(auth_user, password or "") if auth_user else None
        return self._session.runtime.dial(self._session, to, callerid=str(callerid or "anonymous"),
                                          display_name=display_name or "", headers=headers,
                                          auth=auth)

    def call_pstn(self, number: str, callerid: str, headers: dict[str, str] | None = None) -> Call:
        """Call a phone number through the configured SIP trunk (``VGW_SIP_TRUNK_URI``)
        with digest credentials ``VGW_SIP_TRUNK_USER``/``VGW_SIP_TRUNK_PASSWORD``.

        The call limits of :meth:`call_sip` apply.

        Raises:
            GatewayError: no trunk is configured.
            SessionEndedError: the session is terminating or has ended.
        """
        self._check_can_call("VoxEngine.call_pstn")
        rt = self._session.runtime
        uri = rt.trunk_uri_for(str(number))
        return rt.dial(self._session, uri, callerid=str(callerid), display_name="",
                       headers=headers, auth=rt.trunk_credentials())

    def _check_can_call(self, api: str) -> None:
        session = self._session
        session.check_alive(api)
        if session.terminating:
            raise session.ended_error(api, "no new calls once the session is terminating")

    def send_media_between(self, a: MediaUnit, b: MediaUnit) -> None:
        """Route audio both ways: a -> b and b -> a."""
        self._session.check_alive("VoxEngine.send_media_between")
        a.send_media_to(b)
        b.send_media_to(a)

    def stop_media_between(self, a: MediaUnit, b: MediaUnit) -> None:
        """Stop both directions between a and b."""
        self._session.check_alive("VoxEngine.stop_media_between")
        a.stop_media_to(b)
        b.stop_media_to(a)

    def terminate(self) -> None:
        """End this session: hang up its calls, fire Terminating/Terminated, write the CDR."""
        self._session.check_alive("VoxEngine.terminate")
        self._session.terminate()
