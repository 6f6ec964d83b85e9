"""SQLAlchemy 2 ORM models of the gateway's persistent state.

Table and column names follow Voximplant's HTTP API objects (ApplicationInfoType,
ScenarioInfoType, RuleInfoType, CallSessionInfoType, CallInfoType) so the
platform_api layer maps rows to replies one to one. Every datetime is stored as
naive UTC and read back as an aware UTC ``datetime`` (see :class:`UTCDateTime`).

The schema is created by Alembic (``gateway/store/migrations``); a test compares
these models with the migrated database so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned as aware UTC.

    Naive values handed in are taken to be UTC already.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """A tenant. ``id`` is chosen by the operator (VGW_ACCOUNT_ID), never generated."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    #: ``sha256$<salt hex>$<HMAC-SHA256(salt, api_key) hex>``; the key itself is never stored.
    api_key_hash: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Application(Base):
    """A Voximplant-style application: a named set of routing rules."""

    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("account_id", "application_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    application_name: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    rules: Mapped[list[Rule]] = relationship(
        back_populates="application", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Rule.position",
    )


class Scenario(Base):
    """Python source of one scenario, owned by an account."""

    __tablename__ = "scenarios"
    __table_args__ = (UniqueConstraint("account_id", "scenario_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    scenario_name: Mapped[str] = mapped_column(String(200))
    scenario_script: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Rule(Base):
    """A routing rule: a regex on the called number bound to ordered scenarios."""

    __tablename__ = "rules"
    __table_args__ = (UniqueConstraint("application_id", "rule_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    rule_name: Mapped[str] = mapped_column(String(200))
    rule_pattern: Mapped[str] = mapped_column(String(1000))
    rule_pattern_exclude: Mapped[str] = mapped_column(String(1000), default="")
    #: Order of the rule inside its application (lower first).
    position: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    application: Mapped[Application] = relationship(back_populates="rules")
    bindings: Mapped[list[RuleScenario]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RuleScenario.position",
    )


class RuleScenario(Base):
    """One scenario bound to a rule, at ``position`` in the rule's ordered list."""

    __tablename__ = "rule_scenarios"

    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True
    )
    scenario_id: Mapped[int] = mapped_column(
        ForeignKey("scenarios.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)

    scenario: Mapped[Scenario] = relationship()


class CallSession(Base):
    """CDR of one session (Voximplant's CallSessionInfoType).

    Application and rule are copied by value (no foreign keys) so history survives
    deleting them.
    """

    __tablename__ = "call_sessions"
    __table_args__ = (Index("ix_call_sessions_account_start", "account_id", "start_date"),)

    call_session_history_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(Integer)
    application_id: Mapped[int] = mapped_column(Integer)
    application_name: Mapped[str] = mapped_column(String(200), default="")
    rule_id: Mapped[int] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(200), default="")
    start_date: Mapped[datetime] = mapped_column(UTCDateTime())
    end_date: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Seconds.
    duration: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(200), default="")
    custom_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    initiator_address: Mapped[str] = mapped_column(String(200), default="")
    #: JSON list of per-turn Voice AI latency records (``SessionRecord.voice_ai_turns``).
    voice_ai_turns: Mapped[str | None] = mapped_column(Text, nullable=True)

    calls: Mapped[list[CallRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="CallRow.start_time",
    )


class CallRow(Base):
    """CDR of one call leg inside a session (Voximplant's CallInfoType)."""

    __tablename__ = "calls"

    call_session_history_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.call_session_history_id", ondelete="CASCADE"),
        primary_key=True,
    )
    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Answered time in seconds.
    duration: Mapped[int] = mapped_column(Integer, default=0)
    incoming: Mapped[bool] = mapped_column(Boolean, default=False)
    local_number: Mapped[str] = mapped_column(String(200), default="")
    remote_number: Mapped[str] = mapped_column(String(200), default="")
    successful: Mapped[bool] = mapped_column(Boolean, default=False)
    result_code: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(200), default="")
    direction: Mapped[str] = mapped_column(String(16), default="")


class ApiKey(Base):
    """A service-account key (Voximplant's CreateKey): only the RSA public key is stored.

    ``key_id`` is the JWT ``kid``; the private key is handed out once by CreateKey.
    """

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    key_name: Mapped[str] = mapped_column(String(50), default="")
    description: Mapped[str] = mapped_column(String(1000), default="")
    #: SubjectPublicKeyInfo PEM of the key pair's public half.
    public_key: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    roles: Mapped[list[ApiKeyRole]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ApiKeyRole.role_id",
    )


class ApiKeyRole(Base):
    """One role granted to a key (role ids are defined in :mod:`gateway.store.keys`)."""

    __tablename__ = "api_key_roles"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.key_id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class Secret(Base):
    """A named secret of an account (Voximplant's AddSecret), read by scenarios.

    ``secret_value`` is ``fernet:<token>`` when ``VGW_SECRETS_KEY`` was set when it was
    written, else ``plain:<value>`` (see :mod:`gateway.store.secrets`).
    """

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("account_id", "secret_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    secret_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    secret_value: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AppStorageItem(Base):
    """One ``ApplicationStorage`` key-value pair of an application (VoxEngine's
    ApplicationStorage / Voximplant's key-value storage).

    Rows whose ``expire_at`` has passed are never returned and are deleted lazily (on
    the next write to the same application). Deleting the application deletes its items.
    """

    __tablename__ = "application_storage"
    __table_args__ = (
        UniqueConstraint("application_id", "storage_key"),
        Index("ix_application_storage_app_expire", "application_id", "expire_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    #: Up to 200 characters (Voximplant's limit); may carry a "namespace:" prefix.
    storage_key: Mapped[str] = mapped_column(String(200))
    #: Up to 2000 characters (Voximplant's limit).
    storage_value: Mapped[str] = mapped_column(Text)
    expire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Recording(Base):
    """One finished recording (Voximplant's RecordType), listed by GetCallHistory with
    ``with_records`` and served at ``/records/<record_id or record_key>``.

    Session and call are copied by value (no foreign keys), like the call history.
    ``path`` is relative to the recordings directory (``VGW_RECORDINGS_DIR``).
    """

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_account_session", "account_id", "session_id"),)

    record_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The recorder's id: the key in the record's URL.
    record_key: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(Integer)
    session_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record_name: Mapped[str] = mapped_column(String(200), default="")
    path: Mapped[str] = mapped_column(String(1000))
    #: "wav" or "mp3".
    format: Mapped[str] = mapped_column(String(8))
    channels: Mapped[int] = mapped_column(Integer, default=1)
    sample_rate: Mapped[int] = mapped_column(Integer, default=8000)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Milliseconds recorded.
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    #: Bytes.
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
