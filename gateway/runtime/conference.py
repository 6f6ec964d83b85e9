"""Conferences: N participants mixed mix-minus (VoxEngine's ``Conference`` module, snake_case).

Names follow Voximplant's VoxEngine reference (``VoxEngine.createConference``,
``Conference``, ``Endpoint``, ``ConferenceEvents``, ``ConferenceParameters``,
``EndpointParameters``):

* ``VoxEngine.create_conference(parameters)`` returns a :class:`Conference` and fires
  ``ConferenceEvents.Started`` (VoxEngine: "the call of VoxEngine.createConference
  triggers the event"). ``ConferenceParameters.hd_audio``: False (default) mixes
  narrowband 8 kHz audio, True 48 kHz, as VoxEngine does. ``sample_rate`` (a gateway
  extension) picks any rate, e.g. 16000 for wideband AI participants.
* Every participant is an :class:`Endpoint`: a media unit of its own, because a media
  unit receives one stream at a time and a conference needs one input per participant.
  An endpoint has VoxEngine's ``direction``: ``SEND`` (its unit's audio goes into the
  conference), ``RECEIVE`` (its unit hears the conference) or ``BOTH``; the ``mode`` is
  always ``MIX`` (``FORWARD`` is VoxEngine's video SFU mode).
* Joining, the VoxEngine ways:

  - ``VoxEngine.send_media_between(call, conference)``: a participant (``BOTH``) that
    hears everyone but itself;
  - ``call.send_media_to(conference)``: the call talks into the conference (``SEND``);
  - ``conference.send_media_to(unit)``: the unit hears the conference (``RECEIVE``): a
    participant hears everyone but itself, any other unit (a recorder, an ASR, a call
    that only listens) the full mix of everyone;
  - ``conference.add(call=unit, direction="BOTH")`` (``EndpointParameters``) returns the
    :class:`Endpoint`; called again for the same unit it changes the direction.

  A unit has at most one endpoint per conference.
* Leaving: ``conference.remove(unit_or_endpoint)``; ``conference.stop_media_to(unit)``
  (and so ``VoxEngine.stop_media_between(unit, conference)``) removes the unit's
  endpoint too; an endpoint left with no direction (its call ended, or its unit now
  listens to something else and sends nothing) is removed. ``unit.stop_media_to(conference)``
  does nothing: the unit's audio goes to its endpoint, not to the conference object (use
  ``conference.add(call=unit, direction="RECEIVE")`` to mute it).
* ``conference.stop()`` removes every endpoint and fires ``ConferenceEvents.Stopped``
  (``duration`` in seconds, ``cost`` 0). The owning session stops its conferences
  (without events) when it ends.

Named conferences (a gateway extension standing in for VoxEngine's conference rules and
``VoxEngine.callConference(conferenceId)``, where every call to one conference id lands in
one conference session): ``VoxEngine.create_conference(name="room-1")`` is shared per
account. The first session that asks creates it (kept in ``Runtime.conferences`` under
``(account_id, name)``); later sessions of the same account get the same object and join
with ``send_media_between(call, conference)``. Another account never sees it (the same
name there is another conference). The first session's parameters win; a later explicit
rate that differs raises :class:`ConferenceError`. Lifetime rule:

* every session that called ``create_conference(name=...)`` *holds* the conference;
* when a holder ends, its listeners are dropped first, then the endpoints of its units
  are removed (the other sessions hear ``EndpointRemoved``); everyone else keeps talking;
* the conference closes (no events: nobody listens any more) when its last holder ends,
  and leaves the registry; by then every holder's endpoints have left with their
  sessions. A later ``create_conference(name=...)`` starts a new one;
* ``conference.stop()`` from any holder stops it for all of them at once
  (``Stopped`` reaches every session's listeners) and frees the name.

Each listener runs in the session that added it (``current_session``, the handler
watchdog, its tasks) and a failing handler ends that session only. ``Started`` reaches
the listeners of the session whose ``create_conference`` call it answers, so each
session hears it once.

Events (``ConferenceEvents``; each carries ``conference``): ``Started``, ``Stopped``
(``duration``, ``cost``), ``EndpointAdded``, ``EndpointUpdated`` (direction changed) and
``EndpointRemoved`` with ``endpoint``, ``endpointId`` (also ``endpoint_id``), ``call``
(the endpoint's unit), ``direction`` and ``mode``. They are dispatched in order from the
event loop right after the code that caused them, so a handler added just after
``create_conference`` hears ``Started``, and ``send_media_between`` gives one
``EndpointAdded`` with direction ``BOTH``.

Media: on every tick of the shared 20 ms media clock (:mod:`gateway.media.clock`) the
conference takes one frame from each endpoint's input queue (silence if none arrived),
mixes them with :class:`gateway.media.mixer.MixMinusMixer` (PCM16 at the conference
rate) and sends each receiving endpoint's unit the sum of everyone else. Each route edge
converts formats (e.g. a PCMU 8 kHz call into a 16 kHz conference and back). An input
queue holds at most :data:`INPUT_QUEUE_FRAMES` frames (jitter tolerance; beyond that the
oldest audio is dropped) and is trimmed by a frame when it stays deeper than one frame
for a second, so a burst does not add latency for good. The first frame sent to a new
listener is preceded by one frame of silence, a playout cushion that keeps the listener's
playout buffer from running dry between ticks whatever the order of the clock's
subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError
from gateway.media.clock import get_media_clock
from gateway.media.format import AudioFormat, AudioFrame, Encoding
from gateway.runtime.context import current_session
from gateway.runtime.events import ErrorSink, Event, EventTarget, Handler, call_handler
from gateway.runtime.media_unit import MediaUnit

if TYPE_CHECKING:
    from gateway.media.mixer import MixMinusMixer

__all__ = [
    "BOTH",
    "FORWARD",
    "MIX",
    "RECEIVE",
    "SEND",
    "Conference",
    "ConferenceError",
    "ConferenceEvents",
    "Endpoint",
    "create_conference",
    "named_conference",
]

log = logging.getLogger(__name__)

#: Endpoint directions (VoxEngine ``EndpointParameters.direction``).
SEND, RECEIVE, BOTH = "SEND", "RECEIVE", "BOTH"
#: Endpoint modes (VoxEngine ``EndpointParameters.mode``); audio conferences mix.
MIX, FORWARD = "MIX", "FORWARD"
#: Most endpoints one conference may have (VoxEngine's limit).
MAX_ENDPOINTS = 100
#: Frames (20 ms each) an endpoint's input queue holds before it drops the oldest audio.
INPUT_QUEUE_FRAMES = 3
#: Ticks an input queue may stay deeper than one frame before one frame is dropped.
TRIM_AFTER_TICKS = 50
#: Mixing rates: VoxEngine's narrowband default and ``hd_audio``.
NARROWBAND_RATE, HD_RATE = 8000, 48000


class ConferenceEvents:
    """VoxEngine ``ConferenceEvents`` names (payloads: see the module docstring).

    ``ConferenceError`` is VoxEngine's name for failures reported as events; this
    gateway raises :class:`ConferenceError` from the failing call instead, so nothing
    dispatches it today.
    """

    Started = "ConferenceEvents.Started"
    Stopped = "ConferenceEvents.Stopped"
    EndpointAdded = "ConferenceEvents.EndpointAdded"
    EndpointUpdated = "ConferenceEvents.EndpointUpdated"
    EndpointRemoved = "ConferenceEvents.EndpointRemoved"
    ConferenceError = "ConferenceEvents.ConferenceError"


class ConferenceError(GatewayError):
    """A conference was used after it stopped, was over its endpoint limit, or was given
    bad parameters."""


def create_conference(parameters: dict[str, Any] | None = None, *, hd_audio: bool | None = None,
                      sample_rate: int | None = None, owner: ErrorSink | None = None,
                      ) -> Conference:
    """A new :class:`Conference` from VoxEngine's ``ConferenceParameters``.

    Args:
        parameters: ``{"hd_audio": bool}`` (VoxEngine) and/or ``{"sample_rate": int}``;
            the keyword arguments win.
        hd_audio: mix at 48 kHz instead of 8 kHz.
        sample_rate: mix at this rate (Hz), overriding ``hd_audio``.
        owner: the session (default: the one running now).

    Raises:
        ValueError: an unknown parameter or a bad rate.
    """
    return Conference(sample_rate=_rate(parameters, hd_audio, sample_rate), owner=owner)


def _rate(parameters: dict[str, Any] | None, hd_audio: bool | None,
          sample_rate: int | None) -> int:
    """The mixing rate ConferenceParameters ask for (Hz)."""
    params = dict(parameters or {})
    unknown = set(params) - {"hd_audio", "sample_rate"}
    if unknown:
        raise ValueError(f"create_conference: unknown parameters {sorted(unknown)}")
    if hd_audio is None:
        hd_audio = bool(params.get("hd_audio", False))
    if sample_rate is None:
        sample_rate = params.get("sample_rate")
    return int(sample_rate) if sample_rate is not None else (
        HD_RATE if hd_audio else NARROWBAND_RATE)


def named_conference(session: Any, name: str, parameters: dict[str, Any] | None = None, *,
                     hd_audio: bool | None = None, sample_rate: int | None = None,
                     ) -> Conference:
    """The account's conference called ``name``, created on first use; ``session`` holds
    it from now on (the lifetime rule is in the module docstring).

    Args:
        session: the asking session (its ``runtime.conferences`` is the registry, its
            ``match.account_id`` the namespace).
        name: the conference's name (non-empty).
        parameters, hd_audio, sample_rate: as :func:`create_conference`; they apply
            when this call creates the conference.

    Raises:
        ValueError: an empty name, an unknown parameter or a bad rate.
        ConferenceError: the conference exists and an explicit rate differs from its own.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("create_conference: name must be a non-empty string")
    rate = _rate(parameters, hd_audio, sample_rate)
    explicit = (hd_audio is not None or sample_rate is not None
                or bool(parameters and set(parameters) & {"hd_audio", "sample_rate"}))
    registry: dict[tuple[int, str], Conference] = session.runtime.conferences
    key = (int(session.match.account_id), name)
    conf = registry.get(key)
    if conf is not None and not conf.active:
        registry.pop(key, None)
        conf = None
    if conf is None:
        conf = Conference(sample_rate=rate, owner=session, name=name)
        conf._registry = registry
        registry[key] = conf
    elif explicit and rate != conf.sample_rate:
        raise ConferenceError(
            f"conference {name!r} already mixes at {conf.sample_rate} Hz, not {rate} Hz",
            session_id=getattr(session, "id", None))
    else:
        conf._queue(ConferenceEvents.Started, lambda: {}, only=session)
    conf._hold(session)
    return conf


class _Hold:
    """A session's hold on a named conference: closed with the session's units."""

    def __init__(self, conference: Conference, session: Any) -> None:
        self.conference = conference
        self.session = session

    async def close(self) -> None:
        self.conference._release(self.session)

    def __repr__(self) -> str:
        return f"<hold on {self.conference!r}>"


class Endpoint(MediaUnit):
    """One participant of a :class:`Conference` (VoxEngine ``Endpoint``).

    Created by the conference (never directly). Its unit's audio is routed into it (the
    ``SEND`` direction) and it routes the conference's audio to the unit (``RECEIVE``);
    both in the conference's format, converted on the route edges.

    Attributes:
        underruns: ticks its unit was sending but no full frame had arrived (mixed as
            silence).
        dropped_frames: frames of input dropped because the queue was full or trimmed.
    """

    def __init__(self, conference: Conference, unit: MediaUnit, display_name: str = "") -> None:
        super().__init__()
        self._conference = conference
        self._unit = unit
        #: The session the unit belongs to (its event owner when that is a session,
        #: else the one running now): a named conference removes the endpoint when that
        #: session ends.
        owner = getattr(unit, "_owner", None)
        if not callable(getattr(owner, "register_unit", None)):
            owner = current_session.get(None)
        self._session: Any = owner
        self._id = uuid.uuid4().hex
        self._display_name = str(display_name or "")
        self.input_format = self.output_format = conference.format
        self._frame_bytes = conference.format.frame_bytes()
        self._max_bytes = self._frame_bytes * INPUT_QUEUE_FRAMES
        self._inbuf = bytearray()
        self._deep_ticks = 0
        self._prime = False
        self._removed = False
        self._hold = False  # direction changes in progress: no events, no removal
        self._direction: str | None = None  # the last direction it had
        self._announced: str | None = None  # the direction its last event reported
        self.underruns = 0
        self.dropped_frames = 0

    # -- VoxEngine API ----------------------------------------------------------
    def id(self) -> str:
        """The endpoint's id (unique per gateway)."""
        return self._id

    def get_call(self) -> MediaUnit:
        """The unit this endpoint stands for: the Call (or the player, recorder, Voice AI
        client ... that was added)."""
        return self._unit

    def get_direction(self) -> str | None:
        """``SEND``, ``RECEIVE`` or ``BOTH`` as routed now; None once it has neither."""
        sending = self._source is not None
        receiving = bool(self._routes)
        if sending and receiving:
            return BOTH
        if sending:
            return SEND
        return RECEIVE if receiving else None

    def get_mode(self) -> str:
        """Always ``MIX``: the endpoint hears the mix of everyone else."""
        return MIX

    def set_display_name(self, display_name: str) -> None:
        """Set the endpoint's display name (kept for the scenario; no SDK is told)."""
        self._display_name = str(display_name)

    @property
    def display_name(self) -> str:
        return self._display_name

    @property
    def conference(self) -> Conference:
        """The conference this endpoint belongs to."""
        return self._conference

    @property
    def active(self) -> bool:
        """True until the endpoint is removed."""
        return not self._removed

    def __repr__(self) -> str:
        return f"<Endpoint {self._id[:8]} {self.get_direction()} {self._unit!r}>"

    # -- routing hooks ------------------------------------------------------------
    def send_media_to(self, sink: MediaUnit) -> None:
        had = sink in self._routes
        super().send_media_to(sink)
        if not had:
            self._prime = True
        self._conference._endpoint_changed(self)

    def stop_media_to(self, sink: MediaUnit) -> None:
        super().stop_media_to(sink)
        self._conference._endpoint_changed(self)

    def _source_attached(self, source: MediaUnit) -> None:
        self._inbuf.clear()
        self._conference._endpoint_changed(self)

    def _source_detached(self, source: MediaUnit) -> None:
        self._inbuf.clear()
        self._conference._endpoint_changed(self)

    # -- media ----------------------------------------------------------------------
    def _on_media(self, frame: AudioFrame) -> None:
        if self._removed:
            return
        buf = self._inbuf
        buf += frame.data
        excess = len(buf) - self._max_bytes
        if excess > 0:
            drop = -(-excess // self._frame_bytes) * self._frame_bytes
            del buf[:drop]
            self.dropped_frames += drop // self._frame_bytes

    def _take(self) -> bytes | None:
        """The next 20 ms of input, or None (silence) when no full frame is queued."""
        buf = self._inbuf
        fb = self._frame_bytes
        if len(buf) < fb:
            if self._source is not None:
                self.underruns += 1
            self._deep_ticks = 0
            return None
        frame = bytes(buf[:fb])
        del buf[:fb]
        if len(buf) >= fb:  # still a frame or more behind: trim if it lasts
            self._deep_ticks += 1
            if self._deep_ticks >= TRIM_AFTER_TICKS:
                del buf[:fb]
                self.dropped_frames += 1
                self._deep_ticks = 0
        else:
            self._deep_ticks = 0
        return frame


class Conference(MediaUnit, EventTarget):
    """An audio conference: mixes its endpoints mix-minus on the shared media clock.

    Args:
        sample_rate: mixing rate (Hz); PCM16 mono at this rate is the conference's
            format (:attr:`format`).
        owner: the session (default: the one running now); it stops the conference
            when it ends (unless ``name`` is given).
        name: a named conference (see :func:`named_conference`, which makes them):
            shared by the sessions that hold it; its owner is the creating session.

    Attributes:
        format: the conference's :class:`AudioFormat` (PCM16 at ``sample_rate``).
        ticks: mixing ticks run so far (one per 20 ms while it has endpoints).
    """

    def __init__(self, *, sample_rate: int = NARROWBAND_RATE,
                 owner: ErrorSink | None = None, name: str | None = None) -> None:
        from gateway.media.mixer import MixMinusMixer  # numpy: load on use

        if int(sample_rate) < 8000 or int(sample_rate) > 48000:
            raise ValueError(f"conference sample rate must be 8000-48000 Hz, got {sample_rate}")
        session = owner if owner is not None else current_session.get(None)
        MediaUnit.__init__(self)
        EventTarget.__init__(self, session)
        self._session = session
        self.format = AudioFormat(Encoding.PCM16, int(sample_rate))
        self.input_format = self.output_format = self.format
        self._mixer: MixMinusMixer = MixMinusMixer(self.format.sample_rate)
        self._id = uuid.uuid4().hex
        self._endpoints: list[Endpoint] = []
        self._by_unit: dict[MediaUnit, Endpoint] = {}
        self._active = True
        self._t0 = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._clock = get_media_clock()
        self._tick_handle: int | None = None
        self._pending: deque[tuple[str, Callable[[], dict[str, Any]], Any]] = deque()
        self._flush_handle: asyncio.Handle | None = None
        self.ticks = 0
        self._name = name
        #: Sessions holding a named conference (see the module docstring).
        self._holders: list[Any] = []
        #: Where a named conference is registered (``Runtime.conferences``).
        self._registry: dict[tuple[int, str], Conference] | None = None
        #: The session each listener runs in, parallel to ``_listeners[event]``.
        self._listener_owners: dict[str, list[Any]] = {}
        register = getattr(session, "register_unit", None)
        if callable(register) and name is None:
            register(self)
        # a named conference's Started is for its creator (each joiner gets its own)
        self._queue(ConferenceEvents.Started, lambda: {},
                    only=session if name is not None else None)

    # -- VoxEngine API --------------------------------------------------------------
    def id(self) -> str:
        """The conference's id."""
        return self._id

    @property
    def name(self) -> str | None:
        """The name of a named conference (``create_conference(name=...)``), else None."""
        return self._name

    # -- events: each listener runs in its own session ----------------------------------
    def add_event_listener(self, event: str, handler: Handler) -> None:
        """Subscribe ``handler`` to ``event``; it runs in the session adding it (for a
        named conference shared by several sessions; otherwise the owner)."""
        super().add_event_listener(event, handler)
        owner = current_session.get(None) if self._name is not None else None
        self._listener_owners.setdefault(event, []).append(owner or self._owner)

    def remove_event_listener(self, event: str, handler: Handler | None = None) -> None:
        """Unsubscribe ``handler``, or every handler of ``event`` when None."""
        if handler is None:
            self._listeners.pop(event, None)
            self._listener_owners.pop(event, None)
            return
        handlers = self._listeners.get(event)
        if handlers and handler in handlers:
            i = handlers.index(handler)
            del handlers[i]
            del self._listener_owners[event][i]

    def dispatch(self, event: str | Event, **payload: Any) -> Event:
        """Fire ``event`` to every listener, each in its own session."""
        ev = event if isinstance(event, Event) else Event(event, **payload)
        self._dispatch_to(ev, None)
        return ev

    def _dispatch_to(self, ev: Event, only: Any) -> None:
        handlers = self._listeners.get(ev.event_name)
        if not handlers:
            return
        owners = self._listener_owners.get(ev.event_name, [])
        for handler, owner in list(zip(handlers, owners, strict=True)):
            if only is not None and owner is not only:
                continue
            run = getattr(owner, "run_in_context", None)
            if run is not None:
                run(call_handler, owner, handler, (ev,), ev.event_name)
            else:
                call_handler(owner, handler, (ev,), ev.event_name)

    @property
    def active(self) -> bool:
        """True until :meth:`stop` (or the end of the session)."""
        return self._active

    @property
    def sample_rate(self) -> int:
        """The mixing rate, Hz."""
        return self.format.sample_rate

    def add(self, parameters: dict[str, Any] | MediaUnit | None = None, *,
            call: MediaUnit | None = None, direction: str | None = None,
            mode: str | None = None, display_name: str | None = None) -> Endpoint:
        """Add ``call`` (any media unit) as an endpoint, or change its direction
        (VoxEngine ``Conference.add(EndpointParameters)``).

        Args:
            parameters: VoxEngine's ``EndpointParameters`` as a dict (``call``,
                ``direction``, ``mode``, ``displayName``; video keys ``scheme`` and
                ``maxVideoBitrate`` are accepted and ignored), or the unit itself.
            call: the unit to add (wins over ``parameters``).
            direction: ``BOTH`` (default), ``SEND`` or ``RECEIVE``.
            mode: ``MIX`` (the only mode of an audio conference).
            display_name: the endpoint's display name.

        Returns:
            The unit's :class:`Endpoint` (the same one when the unit already has one;
            ``EndpointUpdated`` fires if its direction changed).

        Raises:
            ValueError: bad parameters, or ``FORWARD`` mode.
            ConferenceError: the conference has stopped or has :data:`MAX_ENDPOINTS`.
        """
        if isinstance(parameters, MediaUnit):
            parameters = {"call": parameters}
        params = dict(parameters or {})
        unknown = set(params) - {"call", "direction", "mode", "displayName", "display_name",
                                 "scheme", "maxVideoBitrate", "max_video_bitrate"}
        if unknown:
            raise ValueError(f"Conference.add: unknown parameters {sorted(unknown)}")
        unit = call if call is not None else params.get("call")
        if not isinstance(unit, MediaUnit):
            raise ValueError("Conference.add: 'call' must be a call or another media unit")
        if unit is self or isinstance(unit, Endpoint):
            raise ValueError("Conference.add: a conference or an endpoint cannot be added")
        want = str(direction or params.get("direction") or BOTH).upper()
        if want not in (SEND, RECEIVE, BOTH):
            raise ValueError(f"Conference.add: direction must be SEND, RECEIVE or BOTH, "
                             f"got {want!r}")
        how = str(mode or params.get("mode") or MIX).upper()
        if how != MIX:
            raise ValueError(f"Conference.add: mode {how!r} is not supported; an audio "
                             "conference mixes (MIX)")
        self._check_active("Conference.add")
        name = display_name if display_name is not None else params.get(
            "displayName", params.get("display_name", ""))
        ep = self._by_unit.get(unit)
        new = ep is None
        if ep is None:
            ep = self._new_endpoint(unit, name or "")
        elif name:
            ep.set_display_name(name)
        ep._hold = True
        try:
            # new directions first, then drop old ones: never transiently empty
            if want in (SEND, BOTH) and ep.media_source is not unit:
                unit.send_media_to(ep)
            if want in (RECEIVE, BOTH) and unit not in ep._routes:
                ep.send_media_to(unit)
            if want == SEND and unit in ep._routes:
                ep.stop_media_to(unit)
            if want == RECEIVE and ep.media_source is unit:
                unit.stop_media_to(ep)
        except BaseException:
            if new:
                self._discard(ep)
            raise
        finally:
            ep._hold = False
        if new:
            self._register(ep)
        self._endpoint_changed(ep)
        return ep

    def remove(self, member: MediaUnit | str) -> None:
        """Take a unit, an :class:`Endpoint` or an endpoint id out of the conference:
        its routes to and from the conference end and ``EndpointRemoved`` fires.
        Unknown members are ignored."""
        if isinstance(member, str):
            ep = self.get(member)
        elif isinstance(member, Endpoint):
            ep = member if member._conference is self else None
        else:
            ep = self._by_unit.get(member)
        if ep is not None:
            self._drop(ep)

    def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint with id ``endpoint_id``, or None."""
        for ep in self._endpoints:
            if ep.id() == endpoint_id:
                return ep
        return None

    def get_list(self) -> list[Endpoint]:
        """The conference's endpoints, in the order they joined."""
        return list(self._endpoints)

    @property
    def media_source(self) -> MediaUnit | None:
        """Always None: a conference has one source per endpoint (see :meth:`get_list`)."""
        return None

    @property
    def media_sinks(self) -> list[MediaUnit]:
        """The units that hear this conference (its endpoints' listeners)."""
        return [sink for ep in self._endpoints for sink in ep.media_sinks]

    def endpoint_of(self, unit: MediaUnit) -> Endpoint | None:
        """The endpoint of ``unit`` in this conference, or None."""
        return self._by_unit.get(unit)

    def send_media_to(self, sink: MediaUnit) -> None:
        """Let ``sink`` hear the conference: everyone but itself when it is a
        participant, the full mix otherwise (VoxEngine ``Conference.sendMediaTo``).

        Raises:
            TypeError: ``sink`` is not a media unit.
            ConferenceError: the conference has stopped.
        """
        if not isinstance(sink, MediaUnit):
            raise TypeError(f"send_media_to expects a media unit, got {type(sink).__name__}")
        ep = self._by_unit.get(sink)
        if ep is not None and sink in ep._routes:
            return
        self.add(call=sink, direction=BOTH if ep is not None and ep.media_source is sink
                 else RECEIVE)

    def stop_media_to(self, sink: MediaUnit) -> None:
        """Take ``sink`` out of the conference (both directions; see the module
        docstring); a no-op for a unit that is not in it."""
        ep = self._by_unit.get(sink)
        if ep is not None:
            self._drop(ep)

    def stop_all_media(self) -> None:
        """Remove every endpoint (``EndpointRemoved`` fires for each)."""
        for ep in list(self._endpoints):
            self._drop(ep)

    def stop(self) -> None:
        """Stop the conference for good: every endpoint is removed, then
        ``ConferenceEvents.Stopped`` fires (``duration`` in s, ``cost`` 0)."""
        if not self._active:
            return
        self.stop_all_media()
        self._active = False
        self._unsubscribe()
        self._forget()
        duration = round(time.monotonic() - self._t0)
        self._queue(ConferenceEvents.Stopped, lambda: {"duration": duration, "cost": 0})

    async def close(self) -> None:
        """Stop without events (the session ends)."""
        self._pending.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._active = False
        for ep in list(self._endpoints):
            self._drop(ep, announce=False)
        self._unsubscribe()
        self._forget()

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        named = f" {self._name!r}" if self._name is not None else ""
        return f"<Conference {self._id[:8]}{named} {state} {len(self._endpoints)} endpoints>"

    # -- named conferences: holders ---------------------------------------------------
    def _hold(self, session: Any) -> None:
        """``session`` holds this named conference until it ends."""
        if any(h is session for h in self._holders):
            return
        self._holders.append(session)
        register = getattr(session, "register_unit", None)
        if callable(register):
            register(_Hold(self, session))

    def _release(self, session: Any) -> None:
        """``session`` has ended: its listeners go, then its endpoints (the others hear
        ``EndpointRemoved``); the last holder's end closes the conference."""
        self._holders = [h for h in self._holders if h is not session]
        for event, owners in list(self._listener_owners.items()):
            handlers = self._listeners.get(event, [])
            keep = [i for i, o in enumerate(owners) if o is not session]
            self._listener_owners[event] = [owners[i] for i in keep]
            self._listeners[event] = [handlers[i] for i in keep]
        self._pending = deque(p for p in self._pending if p[2] is not session)
        for ep in list(self._endpoints):
            if ep._session is session:
                self._drop(ep)
        if not self._holders and self._active:
            self._pending.clear()
            self._active = False
            for ep in list(self._endpoints):
                self._drop(ep, announce=False)
            self._unsubscribe()
            self._forget()

    def _forget(self) -> None:
        """Free the name: a later ``create_conference(name=...)`` makes a new one."""
        registry = self._registry
        if registry is not None and self._name is not None:
            for key, conf in list(registry.items()):
                if conf is self:
                    del registry[key]

    # -- MediaUnit hooks ------------------------------------------------------------
    def _source_attached(self, source: MediaUnit) -> None:
        # ``source.send_media_to(conference)`` made this conference the sink of source;
        # a conference takes one stream per participant, so the route moves to the
        # source's endpoint (created on first use).
        source._routes.pop(self, None)
        self._source = None
        if isinstance(source, Endpoint) and source._conference is self:
            raise ValueError("an endpoint cannot send to its own conference")
        self._check_active("send_media_to(conference)")
        ep = self._by_unit.get(source)
        if ep is not None:
            if ep.media_source is not source:
                source.send_media_to(ep)
            return
        ep = self._new_endpoint(source)
        try:
            source.send_media_to(ep)
        except BaseException:
            self._discard(ep)
            raise
        self._register(ep)
        self._endpoint_changed(ep)

    # -- internals ------------------------------------------------------------------
    def _check_active(self, api: str) -> None:
        if not self._active:
            raise ConferenceError(f"{api}: the conference has stopped",
                                  session_id=getattr(self._session, "id", None))

    def _new_endpoint(self, unit: MediaUnit, display_name: str = "") -> Endpoint:
        """An endpoint for ``unit``, not yet registered (its routes come first)."""
        if len(self._endpoints) >= MAX_ENDPOINTS:
            raise ConferenceError(f"conference limit reached: {MAX_ENDPOINTS} endpoints",
                                  session_id=getattr(self._session, "id", None))
        ep = Endpoint(self, unit, display_name)
        ep._hold = True
        return ep

    def _register(self, ep: Endpoint) -> None:
        """Make a routed endpoint a member: it is mixed from the next tick on."""
        ep._hold = False
        self._endpoints.append(ep)
        self._by_unit[ep._unit] = ep
        self._queue(ConferenceEvents.EndpointAdded, lambda: self._announce(ep))
        if self._tick_handle is None:
            self._tick_handle = self._clock.subscribe(self._tick)

    @staticmethod
    def _discard(ep: Endpoint) -> None:
        """Undo a half-built endpoint whose routing failed (no event: it never joined)."""
        ep._removed = True
        unit = ep._unit
        if ep._source is not None and ep not in ep._source._routes:
            ep._source = None  # a failed send_media_to may leave its sink's source set
        if unit._source is ep and unit not in ep._routes:
            unit._source = None
        ep.stop_all_media()

    def _announce(self, ep: Endpoint) -> dict[str, Any]:
        ep._announced = ep._direction
        return self._payload(ep, ep._direction)

    def _payload(self, ep: Endpoint, direction: str | None) -> dict[str, Any]:
        return {"endpoint": ep, "endpointId": ep.id(), "endpoint_id": ep.id(),
                "call": ep.get_call(), "direction": direction, "mode": MIX}

    def _endpoint_changed(self, ep: Endpoint) -> None:
        """An endpoint's routes changed: track its direction; drop it when it has none."""
        if ep._removed or ep._hold:
            return
        direction = ep.get_direction()
        if direction is None:
            if ep._direction is not None:  # it had one and lost it: it left
                self._drop(ep)
            return
        ep._direction = direction
        if ep._announced is not None and direction != ep._announced:
            ep._announced = direction
            self._queue(ConferenceEvents.EndpointUpdated,
                        lambda d=direction: self._payload(ep, d))

    def _drop(self, ep: Endpoint, *, announce: bool = True) -> None:
        if ep._removed:
            return
        ep._removed = True
        self._endpoints.remove(ep)
        self._by_unit.pop(ep._unit, None)
        direction = ep._direction
        ep.stop_all_media()
        ep._inbuf.clear()
        if announce:
            self._queue(ConferenceEvents.EndpointRemoved,
                        lambda: self._payload(ep, direction))
        if not self._endpoints:
            self._unsubscribe()

    def _unsubscribe(self) -> None:
        if self._tick_handle is not None:
            self._clock.unsubscribe(self._tick_handle)
            self._tick_handle = None

    def _queue(self, name: str, payload: Callable[[], dict[str, Any]], *,
               only: Any = None) -> None:
        """Dispatch ``name`` soon, to the listeners of session ``only`` (None: all)."""
        self._pending.append((name, payload, only))
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        while self._pending:
            name, payload, only = self._pending.popleft()
            self._dispatch_to(Event(name, conference=self, **payload()), only)

    def _tick(self) -> None:
        endpoints = self._endpoints
        if not endpoints:
            return
        eps = list(endpoints)
        result = self._mixer.mix([ep._take() for ep in eps])
        fmt = self.format
        for ep, data in zip(eps, result.minus, strict=True):
            if ep._routes and not ep._removed:
                if ep._prime:
                    ep._prime = False
                    ep._emit(AudioFrame(self._mixer.silence(), fmt))
                ep._emit(AudioFrame(data, fmt))
        self.ticks += 1
