"""Plain records the store returns to the management API.

Field names follow Voximplant's HTTP API types: ApplicationInfoType, ScenarioInfoType,
RuleInfoType. Runtime-facing records (RuleMatch, SessionRecord, ...) live in
:mod:`gateway.runtime.records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class AccountInfo:
    """An authenticated account (never carries the API key or its hash)."""

    account_id: int
    account_name: str


@dataclass(slots=True)
class ApplicationInfo:
    """One application (ApplicationInfoType)."""

    application_id: int
    application_name: str
    created: datetime
    modified: datetime


@dataclass(slots=True)
class ScenarioInfo:
    """One scenario (ScenarioInfoType); ``scenario_script`` only when asked for."""

    scenario_id: int
    scenario_name: str
    created: datetime
    modified: datetime
    scenario_script: str | None = None


@dataclass(slots=True)
class ScenarioRef:
    """A scenario bound to a rule, in the rule's order."""

    scenario_id: int
    scenario_name: str


@dataclass(slots=True)
class RuleInfo:
    """One routing rule (RuleInfoType)."""

    rule_id: int
    rule_name: str
    rule_pattern: str
    rule_pattern_exclude: str
    application_id: int
    application_name: str
    position: int
    created: datetime
    modified: datetime
    scenarios: list[ScenarioRef] = field(default_factory=list)


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of a list query: ``items`` plus the count before paging."""

    items: list[T]
    total_count: int
