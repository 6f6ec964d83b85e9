"""The gateway store: accounts, applications, scenarios, rules and call history.

Operations follow Voximplant's HTTP API methods of the same names (AddApplication,
GetApplications, SetApplicationInfo, AddScenario, GetScenarios, SetScenarioInfo,
DelScenario, BindScenario, ReorderScenarios, AddRule, GetRules, SetRuleInfo,
ReorderRules, DelRule, GetCallHistory) and implement the runtime's
:class:`gateway.runtime.records.SessionStore` protocol. Every management operation
is scoped to one ``account_id``.

SQLAlchemy's synchronous ORM runs on a dedicated worker thread pool (one thread for
SQLite, which has a single writer anyway; several for PostgreSQL), and every public
method is a coroutine that never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from gateway.runtime.records import RuleMatch, ScenarioSource
from gateway.store.app_storage import AppStorageMixin
from gateway.store.db import create_engine, is_sqlite, run_migrations
from gateway.store.errors import AlreadyExists, NotFound
from gateway.store.history import HistoryMixin, _page, _total
from gateway.store.keys import KeysMixin
from gateway.store.keys import offloaded as _offloaded
from gateway.store.models import (
    Account,
    Application,
    Rule,
    RuleScenario,
    Scenario,
    utcnow,
)
from gateway.store.recordings import RecordingsMixin
from gateway.store.records import (
    AccountInfo,
    ApplicationInfo,
    Page,
    RuleInfo,
    ScenarioInfo,
    ScenarioRef,
)
from gateway.store.secrets import SecretsMixin

P = ParamSpec("P")
R = TypeVar("R")

#: Worker threads (and pooled connections) for PostgreSQL.
DEFAULT_PG_WORKERS = 8
_HASH_SCHEME = "sha256"


def hash_api_key(api_key: str, salt: bytes | None = None) -> str:
    """Salted HMAC-SHA256 of an API key, as ``sha256$<salt hex>$<digest hex>``.

    API keys are long random tokens, so a fast salted hash suffices (no key stretching).
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(salt, api_key.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{_HASH_SCHEME}${salt.hex()}${digest}"


def verify_api_key(api_key: str, stored: str) -> bool:
    """Whether ``api_key`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, salt_hex, _digest = stored.split("$", 2)
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    if scheme != _HASH_SCHEME:
        return False
    return hmac.compare_digest(hash_api_key(api_key, salt), stored)


def _app_info(app: Application) -> ApplicationInfo:
    return ApplicationInfo(app.id, app.application_name, app.created, app.modified)


def _scenario_info(sc: Scenario, with_script: bool) -> ScenarioInfo:
    return ScenarioInfo(sc.id, sc.scenario_name, sc.created, sc.modified,
                        sc.scenario_script if with_script else None)


def _rule_info(rule: Rule) -> RuleInfo:
    return RuleInfo(
        rule_id=rule.id, rule_name=rule.rule_name, rule_pattern=rule.rule_pattern,
        rule_pattern_exclude=rule.rule_pattern_exclude, application_id=rule.application_id,
        application_name=rule.application.application_name, position=rule.position,
        created=rule.created, modified=rule.modified,
        scenarios=[ScenarioRef(b.scenario.id, b.scenario.scenario_name) for b in rule.bindings],
    )


def _rule_match(account_id: int, rule: Rule) -> RuleMatch:
    return RuleMatch(
        account_id=account_id, application_id=rule.application_id,
        application_name=rule.application.application_name, rule_id=rule.id,
        rule_name=rule.rule_name,
        scenarios=[ScenarioSource(b.scenario.id, b.scenario.scenario_name,
                                  b.scenario.scenario_script) for b in rule.bindings],
    )


def _pattern_matches(pattern: str, exclude: str, number: str) -> bool:
    try:
        if re.fullmatch(pattern, number) is None:
            return False
        return not (exclude and re.fullmatch(exclude, number) is not None)
    except re.error:
        return False


_RULE_LOAD = (
    selectinload(Rule.application),
    selectinload(Rule.bindings).selectinload(RuleScenario.scenario),
)



def _find_owned(s: Session, model: Any, kind: str, account_id: int, obj_id: int | None,
                name_column: Any, name: str | None) -> Any:
    """The account's ``model`` row with ``obj_id`` and/or ``name``.

    Raises:
        NotFound: no such row in this account.
    """
    stmt = select(model).where(model.account_id == account_id)
    if obj_id is not None:
        stmt = stmt.where(model.id == obj_id)
    if name is not None:
        stmt = stmt.where(name_column == name)
    row = s.scalars(stmt).first()
    if row is None:
        raise NotFound(kind, obj_id if obj_id is not None else name)
    return row

class Store(KeysMixin, SecretsMixin, HistoryMixin, AppStorageMixin, RecordingsMixin):
    """Persistent state of the gateway; implements ``SessionStore`` (with recordings,
    :mod:`gateway.store.recordings`) and ``AppStorageStore`` (``ApplicationStorage``,
    :mod:`gateway.store.app_storage`).

    Create with :func:`open_store`; call :meth:`close` when done.

    Args:
        engine: a SQLAlchemy engine whose schema is at Alembic head.
        workers: worker threads running database work.
    """

    def __init__(self, engine: Engine, *, workers: int = 1):
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vgw-db")

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    async def close(self) -> None:
        """Close every pooled connection and stop the worker threads."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._engine.dispose)
        self._executor.shutdown(wait=True)

    # -- accounts ---------------------------------------------------------------------

    @_offloaded
    def ensure_account(self, account_id: int, name: str, api_key: str) -> None:
        """Create account ``account_id`` or update its name and API key (startup bootstrap).

        Args:
            account_id: the id clients send as ``account_id``.
            name: display name.
            api_key: the secret; only a salted hash is stored.
        """
        with self._sessions.begin() as s:
            account = s.get(Account, account_id)
            if account is None:
                s.add(Account(id=account_id, name=name, api_key_hash=hash_api_key(api_key)))
            else:
                account.name = name
                if not verify_api_key(api_key, account.api_key_hash):
                    account.api_key_hash = hash_api_key(api_key)

    @_offloaded
    def authenticate(self, account_id: int, api_key: str) -> AccountInfo | None:
        """The account if ``api_key`` is its key, else ``None`` (also for ids no column holds)."""
        with self._sessions() as s:
            in_range = -(2**31) <= account_id < 2**31
            account = s.get(Account, account_id) if in_range else None
            if account is None:
                verify_api_key(api_key, hash_api_key("", b"\0" * 16))  # same work either way
                return None
            if not verify_api_key(api_key, account.api_key_hash):
                return None
            return AccountInfo(account.id, account.name)

    @_offloaded
    def account_exists(self, account_id: int) -> bool:
        """Whether account ``account_id`` exists."""
        with self._sessions() as s:
            return s.get(Account, account_id) is not None

    @_offloaded
    def ensure_default_inbound(self, account_id: int, scenario_script: str, *,
                               application_name: str = "default", rule_name: str = "inbound",
                               scenario_name: str = "inbound_ai",
                               rule_pattern: str = ".*") -> bool:
        """First-start convenience: an account with no application gets application
        ``default`` with rule ``inbound`` (pattern ``.*``) running ``scenario_script``.

        An account that has any application is left alone (the operator's setup wins).

        Returns:
            Whether the default setup was created now.
        """
        with self._sessions.begin() as s:
            has_app = s.scalar(select(Application.id)
                               .where(Application.account_id == account_id).limit(1))
            if has_app is not None:
                return False
            app = Application(account_id=account_id, application_name=application_name)
            sc = s.scalars(select(Scenario).where(Scenario.account_id == account_id,
                                                  Scenario.scenario_name == scenario_name)
                           ).first()
            if sc is None:
                sc = Scenario(account_id=account_id, scenario_name=scenario_name,
                              scenario_script=scenario_script)
                s.add(sc)
            s.add(app)
            s.flush()
            rule = Rule(application_id=app.id, rule_name=rule_name, rule_pattern=rule_pattern,
                        rule_pattern_exclude="", position=0)
            s.add(rule)
            s.flush()
            s.add(RuleScenario(rule_id=rule.id, scenario_id=sc.id, position=0))
            return True

    # -- applications -----------------------------------------------------------------

    @staticmethod
    def _find_app(s: Session, account_id: int, application_id: int | None,
                  application_name: str | None) -> Application:
        return _find_owned(s, Application, "application", account_id, application_id,
                           Application.application_name, application_name)

    @_offloaded
    def add_application(self, account_id: int, application_name: str) -> ApplicationInfo:
        """AddApplication. Raises :class:`AlreadyExists` if the name is taken."""
        try:
            with self._sessions.begin() as s:
                taken = s.scalar(select(Application.id).where(
                    Application.account_id == account_id,
                    Application.application_name == application_name))
                if taken is not None:
                    raise AlreadyExists("application", application_name)
                app = Application(account_id=account_id, application_name=application_name)
                s.add(app)
                s.flush()
                return _app_info(app)
        except IntegrityError as exc:
            raise AlreadyExists("application", application_name) from exc

    @_offloaded
    def get_application(self, account_id: int, *, application_id: int | None = None,
                        application_name: str | None = None) -> ApplicationInfo:
        """One application by id or name. Raises :class:`NotFound`."""
        with self._sessions() as s:
            return _app_info(self._find_app(s, account_id, application_id, application_name))

    @_offloaded
    def get_applications(self, account_id: int, *, application_id: int | None = None,
                         application_name: str | None = None, offset: int = 0,
                         count: int = 20) -> Page[ApplicationInfo]:
        """GetApplications: the account's applications by id, optionally filtered."""
        stmt = select(Application).where(Application.account_id == account_id)
        if application_id is not None:
            stmt = stmt.where(Application.id == application_id)
        if application_name is not None:
            stmt = stmt.where(Application.application_name == application_name)
        with self._sessions() as s:
            total = _total(s, stmt)
            apps = s.scalars(_page(stmt.order_by(Application.id), offset, count)).all()
            return Page([_app_info(a) for a in apps], total)

    @_offloaded
    def del_applications(self, account_id: int, *, application_ids: Sequence[int] = (),
                         application_names: Sequence[str] = ()) -> int:
        """DelApplication: delete applications (and their rules). Returns how many."""
        with self._sessions.begin() as s:
            apps = [self._find_app(s, account_id, i, None) for i in application_ids]
            apps += [self._find_app(s, account_id, None, n) for n in application_names]
            for app in {a.id: a for a in apps}.values():
                s.delete(app)
            return len({a.id for a in apps})

    @_offloaded
    def set_application_info(self, account_id: int, *, application_id: int | None = None,
                             application_name: str | None = None,
                             new_name: str | None = None) -> ApplicationInfo:
        """SetApplicationInfo: rename an application (found by id or by name).

        Raises:
            NotFound: no such application in the account.
            AlreadyExists: ``new_name`` is taken by another application.
        """
        try:
            with self._sessions.begin() as s:
                app = self._find_app(s, account_id, application_id, application_name)
                if new_name is not None and new_name != app.application_name:
                    taken = s.scalar(select(Application.id).where(
                        Application.account_id == account_id,
                        Application.application_name == new_name))
                    if taken is not None:
                        raise AlreadyExists("application", new_name)
                    app.application_name = new_name
                    app.modified = utcnow()
                s.flush()
                return _app_info(app)
        except IntegrityError as exc:
            raise AlreadyExists("application", new_name or "") from exc

    # -- scenarios --------------------------------------------------------------------

    @staticmethod
    def _find_scenario(s: Session, account_id: int, scenario_id: int | None,
                       scenario_name: str | None) -> Scenario:
        return _find_owned(s, Scenario, "scenario", account_id, scenario_id,
                           Scenario.scenario_name, scenario_name)

    @_offloaded
    def add_scenario(self, account_id: int, scenario_name: str, scenario_script: str, *,
                     rewrite: bool = False) -> ScenarioInfo:
        """AddScenario; with ``rewrite`` an existing scenario of that name gets the new script.

        Raises:
            AlreadyExists: the name is taken and ``rewrite`` is false.
        """
        try:
            with self._sessions.begin() as s:
                sc = s.scalars(select(Scenario).where(
                    Scenario.account_id == account_id,
                    Scenario.scenario_name == scenario_name)).first()
                if sc is not None:
                    if not rewrite:
                        raise AlreadyExists("scenario", scenario_name)
                    sc.scenario_script = scenario_script
                    sc.modified = utcnow()
                else:
                    sc = Scenario(account_id=account_id, scenario_name=scenario_name,
                                  scenario_script=scenario_script)
                    s.add(sc)
                s.flush()
                return _scenario_info(sc, with_script=False)
        except IntegrityError as exc:
            raise AlreadyExists("scenario", scenario_name) from exc

    @_offloaded
    def get_scenarios(self, account_id: int, *, scenario_id: int | None = None,
                      scenario_name: str | None = None, with_script: bool = False,
                      offset: int = 0, count: int = 20) -> Page[ScenarioInfo]:
        """GetScenarios: the account's scenarios by id, optionally filtered."""
        stmt = select(Scenario).where(Scenario.account_id == account_id)
        if scenario_id is not None:
            stmt = stmt.where(Scenario.id == scenario_id)
        if scenario_name is not None:
            stmt = stmt.where(Scenario.scenario_name == scenario_name)
        with self._sessions() as s:
            total = _total(s, stmt)
            rows = s.scalars(_page(stmt.order_by(Scenario.id), offset, count)).all()
            return Page([_scenario_info(r, with_script) for r in rows], total)

    @_offloaded
    def set_scenario_info(self, account_id: int, *, scenario_id: int | None = None,
                          scenario_name: str | None = None, new_name: str | None = None,
                          scenario_script: str | None = None) -> ScenarioInfo:
        """SetScenarioInfo: rename a scenario and/or replace its script.

        Raises:
            NotFound: no such scenario.
            AlreadyExists: ``new_name`` is taken by another scenario.
        """
        try:
            with self._sessions.begin() as s:
                sc = self._find_scenario(s, account_id, scenario_id, scenario_name)
                if new_name is not None and new_name != sc.scenario_name:
                    taken = s.scalar(select(Scenario.id).where(
                        Scenario.account_id == account_id, Scenario.scenario_name == new_name))
                    if taken is not None:
                        raise AlreadyExists("scenario", new_name)
                    sc.scenario_name = new_name
                if scenario_script is not None:
                    sc.scenario_script = scenario_script
                sc.modified = utcnow()
                s.flush()
                return _scenario_info(sc, with_script=False)
        except IntegrityError as exc:
            raise AlreadyExists("scenario", new_name or "") from exc

    @_offloaded
    def del_scenarios(self, account_id: int, *, scenario_ids: Sequence[int] = (),
                      scenario_names: Sequence[str] = (), delete_all: bool = False) -> int:
        """DelScenario: delete scenarios (unbinding them from rules). Returns how many.

        Raises:
            NotFound: one of the ids or names does not exist (nothing is deleted).
        """
        with self._sessions.begin() as s:
            if delete_all:
                found = list(s.scalars(select(Scenario).where(Scenario.account_id == account_id)))
            else:
                found = [self._find_scenario(s, account_id, i, None) for i in scenario_ids]
                found += [self._find_scenario(s, account_id, None, n) for n in scenario_names]
            unique = {sc.id: sc for sc in found}
            for sc in unique.values():
                s.delete(sc)
            return len(unique)

    # -- rules ------------------------------------------------------------------------

    @_offloaded
    def add_rule(self, account_id: int, *, application_id: int, rule_name: str,
                 rule_pattern: str, rule_pattern_exclude: str = "",
                 scenario_ids: Sequence[int] = (), scenario_names: Sequence[str] = ()) -> RuleInfo:
        """AddRule: a rule placed after the application's existing rules.

        Scenarios run in the order given: ``scenario_ids`` first, then ``scenario_names``
        (duplicates are dropped).

        Raises:
            NotFound: the application or one of the scenarios does not exist.
            AlreadyExists: the application already has a rule of that name.
        """
        try:
            with self._sessions.begin() as s:
                app = self._find_app(s, account_id, application_id, None)
                taken = s.scalar(select(Rule.id).where(Rule.application_id == app.id,
                                                       Rule.rule_name == rule_name))
                if taken is not None:
                    raise AlreadyExists("rule", rule_name)
                scenarios = [self._find_scenario(s, account_id, i, None) for i in scenario_ids]
                scenarios += [self._find_scenario(s, account_id, None, n)
                              for n in scenario_names]
                last = s.scalar(select(func.max(Rule.position))
                                .where(Rule.application_id == app.id))
                rule = Rule(application_id=app.id, rule_name=rule_name,
                            rule_pattern=rule_pattern,
                            rule_pattern_exclude=rule_pattern_exclude or "",
                            position=(last + 1) if last is not None else 0)
                s.add(rule)
                s.flush()
                for pos, sc_id in enumerate(dict.fromkeys(sc.id for sc in scenarios)):
                    s.add(RuleScenario(rule_id=rule.id, scenario_id=sc_id, position=pos))
                s.flush()
                rule_id = rule.id
            with self._sessions() as s:
                loaded = s.scalars(select(Rule).options(*_RULE_LOAD)
                                   .where(Rule.id == rule_id)).one()
                return _rule_info(loaded)
        except IntegrityError as exc:
            raise AlreadyExists("rule", rule_name) from exc

    @staticmethod
    def _rules_stmt(account_id: int, application_id: int | None, rule_ids: Iterable[int] | None,
                    rule_names: Iterable[str] | None) -> Select[tuple[Rule]]:
        stmt = (select(Rule).join(Application, Rule.application_id == Application.id)
                .where(Application.account_id == account_id))
        if application_id is not None:
            stmt = stmt.where(Rule.application_id == application_id)
        if rule_ids is not None:
            stmt = stmt.where(Rule.id.in_(list(rule_ids)))
        if rule_names is not None:
            stmt = stmt.where(Rule.rule_name.in_(list(rule_names)))
        return stmt

    @_offloaded
    def get_rules(self, account_id: int, *, application_id: int | None = None,
                  rule_id: int | None = None, rule_name: str | None = None, offset: int = 0,
                  count: int = 20) -> Page[RuleInfo]:
        """GetRules: rules in (application, position) order, with their bound scenarios."""
        stmt = self._rules_stmt(account_id, application_id,
                                None if rule_id is None else [rule_id],
                                None if rule_name is None else [rule_name])
        with self._sessions() as s:
            total = _total(s, stmt)
            rows = s.scalars(_page(stmt.options(*_RULE_LOAD)
                                   .order_by(Rule.application_id, Rule.position, Rule.id),
                                   offset, count)).all()
            return Page([_rule_info(r) for r in rows], total)

    @_offloaded
    def del_rules(self, account_id: int, *, application_id: int | None = None,
                  rule_ids: Sequence[int] = (), rule_names: Sequence[str] = (),
                  delete_all: bool = False) -> int:
        """DelRule: delete rules by id, or by name inside ``application_id``.

        Raises:
            NotFound: one of the rules does not exist (nothing is deleted).
        """
        with self._sessions.begin() as s:
            if delete_all:
                found = list(s.scalars(self._rules_stmt(account_id, application_id, None, None)))
            else:
                found = []
                for rid in rule_ids:
                    rule = s.scalars(self._rules_stmt(account_id, application_id, [rid],
                                                      None)).first()
                    if rule is None:
                        raise NotFound("rule", rid)
                    found.append(rule)
                for name in rule_names:
                    matches = list(s.scalars(self._rules_stmt(account_id, application_id, None,
                                                              [name])))
                    if not matches:
                        raise NotFound("rule", name)
                    found.extend(matches)
            unique = {r.id: r for r in found}
            for rule in unique.values():
                s.delete(rule)
            return len(unique)

    def _find_rule(self, s: Session, account_id: int, rule_id: int | None,
                   rule_name: str | None, application_id: int | None) -> Rule:
        """The account's rule by id, or by name inside ``application_id``.

        Raises:
            NotFound: no such rule in the account (``kind == "rule"``).
        """
        stmt = self._rules_stmt(account_id, application_id,
                                None if rule_id is None else [rule_id],
                                None if rule_name is None else [rule_name])
        rule = s.scalars(stmt.options(*_RULE_LOAD)
                         .order_by(Rule.application_id, Rule.position, Rule.id)).first()
        if rule is None:
            raise NotFound("rule", rule_id if rule_id is not None else rule_name)
        return rule

    @_offloaded
    def set_rule_info(self, account_id: int, *, rule_id: int, new_name: str | None = None,
                      rule_pattern: str | None = None,
                      rule_pattern_exclude: str | None = None) -> RuleInfo:
        """SetRuleInfo: rename a rule and/or change its patterns (``None`` leaves a field).

        Raises:
            NotFound: no such rule in the account.
            AlreadyExists: the application already has another rule named ``new_name``.
        """
        try:
            with self._sessions.begin() as s:
                rule = self._find_rule(s, account_id, rule_id, None, None)
                if new_name is not None and new_name != rule.rule_name:
                    taken = s.scalar(select(Rule.id).where(
                        Rule.application_id == rule.application_id, Rule.rule_name == new_name))
                    if taken is not None:
                        raise AlreadyExists("rule", new_name)
                    rule.rule_name = new_name
                if rule_pattern is not None:
                    rule.rule_pattern = rule_pattern
                if rule_pattern_exclude is not None:
                    rule.rule_pattern_exclude = rule_pattern_exclude
                rule.modified = utcnow()
                s.flush()
                return _rule_info(rule)
        except IntegrityError as exc:
            raise AlreadyExists("rule", new_name or "") from exc

    @_offloaded
    def reorder_rules(self, account_id: int, rule_ids: Sequence[int]) -> None:
        """ReorderRules: the listed rules are tried first, in the order given.

        Rules of the same application that are not listed keep their relative order
        after the listed ones; rules of several applications are reordered per
        application.

        Raises:
            NotFound: one of the rules does not exist in the account (nothing changes).
        """
        with self._sessions.begin() as s:
            listed: list[Rule] = []
            for rid in dict.fromkeys(rule_ids):
                listed.append(self._find_rule(s, account_id, rid, None, None))
            for app_id in dict.fromkeys(r.application_id for r in listed):
                first = [r for r in listed if r.application_id == app_id]
                first_ids = {r.id for r in first}
                rest = [r for r in s.scalars(select(Rule).where(Rule.application_id == app_id)
                                             .order_by(Rule.position, Rule.id))
                        if r.id not in first_ids]
                for pos, rule in enumerate([*first, *rest]):
                    rule.position = pos

    @_offloaded
    def bind_scenarios(self, account_id: int, *, rule_id: int | None = None,
                       rule_name: str | None = None, application_id: int | None = None,
                       scenario_ids: Sequence[int] = (), scenario_names: Sequence[str] = (),
                       all_scenarios: bool = False, bind: bool = True) -> RuleInfo:
        """BindScenario: bind scenarios to a rule (appended in the order given) or unbind them.

        Args:
            rule_id: the rule, or ``rule_name`` inside ``application_id``.
            scenario_ids: scenarios by id (first), then ``scenario_names``.
            all_scenarios: every scenario of the account (bind) or of the rule (unbind).
            bind: ``False`` unbinds; scenarios not bound are ignored.

        Raises:
            NotFound: the rule or one of the scenarios does not exist (nothing changes).
        """
        with self._sessions.begin() as s:
            rule = self._find_rule(s, account_id, rule_id, rule_name, application_id)
            if all_scenarios:
                chosen = list(s.scalars(select(Scenario).where(Scenario.account_id == account_id)
                                        .order_by(Scenario.id)))
            else:
                chosen = [self._find_scenario(s, account_id, i, None) for i in scenario_ids]
                chosen += [self._find_scenario(s, account_id, None, n) for n in scenario_names]
            chosen_ids = list(dict.fromkeys(sc.id for sc in chosen))
            bound = list(rule.bindings)
            bound_ids = {b.scenario_id for b in bound}
            if bind:
                for sc_id in chosen_ids:
                    if sc_id not in bound_ids:
                        rule.bindings.append(RuleScenario(rule_id=rule.id, scenario_id=sc_id,
                                                          position=len(rule.bindings)))
            else:
                drop = set(chosen_ids)
                for b in bound:
                    if b.scenario_id in drop:
                        rule.bindings.remove(b)
            for pos, b in enumerate(rule.bindings):
                b.position = pos
            rule.modified = utcnow()
            s.flush()
            rule_pk = rule.id
        with self._sessions() as s:
            return _rule_info(s.scalars(select(Rule).options(*_RULE_LOAD)
                                        .where(Rule.id == rule_pk)).one())

    @_offloaded
    def reorder_scenarios(self, account_id: int, *, rule_id: int | None = None,
                          rule_name: str | None = None, application_id: int | None = None,
                          scenario_ids: Sequence[int] = ()) -> RuleInfo:
        """ReorderScenarios: the listed scenarios of the rule run first, in the order given.

        Bound scenarios that are not listed keep their relative order after them.

        Raises:
            NotFound: the rule does not exist, or a listed scenario is not bound to it.
        """
        with self._sessions.begin() as s:
            rule = self._find_rule(s, account_id, rule_id, rule_name, application_id)
            by_id = {b.scenario_id: b for b in rule.bindings}
            first = []
            for sc_id in dict.fromkeys(scenario_ids):
                if sc_id not in by_id:
                    raise NotFound("scenario", sc_id)
                first.append(by_id[sc_id])
            first_ids = {b.scenario_id for b in first}
            ordered = [*first, *(b for b in rule.bindings if b.scenario_id not in first_ids)]
            for pos, b in enumerate(ordered):
                b.position = pos
            rule.modified = utcnow()
            s.flush()
            rule_pk = rule.id
        with self._sessions() as s:
            return _rule_info(s.scalars(select(Rule).options(*_RULE_LOAD)
                                        .where(Rule.id == rule_pk)).one())

    @_offloaded
    def resolve_rule(self, account_id: int, *, rule_id: int | None = None,
                     rule_name: str | None = None,
                     application_id: int | None = None) -> RuleMatch:
        """The rule (by id, or by name inside ``application_id``) with its scenarios in order.

        Raises:
            NotFound: no such rule in the account (``kind == "rule"``).
        """
        stmt = self._rules_stmt(account_id, application_id,
                                None if rule_id is None else [rule_id],
                                None if rule_name is None else [rule_name])
        with self._sessions() as s:
            rule = s.scalars(stmt.options(*_RULE_LOAD)
                             .order_by(Rule.application_id, Rule.position)).first()
            if rule is None:
                raise NotFound("rule", rule_id if rule_id is not None else rule_name)
            return _rule_match(account_id, rule)

    # -- SessionStore (runtime) -------------------------------------------------------

    @_offloaded
    def match_inbound_rule(self, number: str) -> RuleMatch | None:
        """First rule, over all accounts, in (application id, rule position) order, whose
        ``rule_pattern`` fully matches ``number`` and whose ``rule_pattern_exclude`` does not.
        """
        stmt = (select(Rule, Application.account_id)
                .join(Application, Rule.application_id == Application.id)
                .options(*_RULE_LOAD)
                .order_by(Rule.application_id, Rule.position, Rule.id))
        with self._sessions() as s:
            for rule, account_id in s.execute(stmt):
                if _pattern_matches(rule.rule_pattern, rule.rule_pattern_exclude, number):
                    return _rule_match(account_id, rule)
        return None


async def open_store(database_url: str, *, workers: int | None = None) -> Store:
    """Open the database at ``database_url``, migrate it to head and return the store.

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql://user@host:port/db`` (plain
            URLs; the driver is chosen here).
        workers: database worker threads; default 1 for SQLite, 8 for PostgreSQL.
    """
    if workers is None:
        workers = 1 if is_sqlite(database_url) else DEFAULT_PG_WORKERS
    engine = create_engine(database_url, pool_size=workers)
    store = Store(engine, workers=workers)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(store._executor, run_migrations, engine)
    except BaseException:
        await store.close()
        raise
    return store
