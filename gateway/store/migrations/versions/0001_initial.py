"""Initial schema: accounts, applications, scenarios, rules, rule_scenarios, call_sessions, calls.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("api_key_hash", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("application_name", sa.String(200), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("modified", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name="fk_applications_account_id_accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
        sa.UniqueConstraint("account_id", "application_name",
                            name="uq_applications_account_id"),
    )
    op.create_index("ix_applications_account_id", "applications", ["account_id"])
    op.create_table(
        "scenarios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("scenario_name", sa.String(200), nullable=False),
        sa.Column("scenario_script", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("modified", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name="fk_scenarios_account_id_accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_scenarios"),
        sa.UniqueConstraint("account_id", "scenario_name", name="uq_scenarios_account_id"),
    )
    op.create_index("ix_scenarios_account_id", "scenarios", ["account_id"])
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("rule_name", sa.String(200), nullable=False),
        sa.Column("rule_pattern", sa.String(1000), nullable=False),
        sa.Column("rule_pattern_exclude", sa.String(1000), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("modified", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE",
                                name="fk_rules_application_id_applications"),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
        sa.UniqueConstraint("application_id", "rule_name", name="uq_rules_application_id"),
    )
    op.create_index("ix_rules_application_id", "rules", ["application_id"])
    op.create_table(
        "rule_scenarios",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("scenario_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], ondelete="CASCADE",
                                name="fk_rule_scenarios_rule_id_rules"),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], ondelete="CASCADE",
                                name="fk_rule_scenarios_scenario_id_scenarios"),
        sa.PrimaryKeyConstraint("rule_id", "scenario_id", name="pk_rule_scenarios"),
    )
    op.create_index("ix_rule_scenarios_scenario_id", "rule_scenarios", ["scenario_id"])
    op.create_table(
        "call_sessions",
        sa.Column("call_session_history_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("application_name", sa.String(200), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule_name", sa.String(200), nullable=False),
        sa.Column("start_date", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(200), nullable=False),
        sa.Column("custom_data", sa.Text(), nullable=True),
        sa.Column("initiator_address", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("call_session_history_id", name="pk_call_sessions"),
        sa.UniqueConstraint("session_id", name="uq_call_sessions_session_id"),
    )
    op.create_index("ix_call_sessions_account_start", "call_sessions",
                    ["account_id", "start_date"])
    op.create_table(
        "calls",
        sa.Column("call_session_history_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("incoming", sa.Boolean(), nullable=False),
        sa.Column("local_number", sa.String(200), nullable=False),
        sa.Column("remote_number", sa.String(200), nullable=False),
        sa.Column("successful", sa.Boolean(), nullable=False),
        sa.Column("result_code", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["call_session_history_id"],
                                ["call_sessions.call_session_history_id"], ondelete="CASCADE",
                                name="fk_calls_call_session_history_id_call_sessions"),
        sa.PrimaryKeyConstraint("call_session_history_id", "call_id", name="pk_calls"),
    )


def downgrade() -> None:
    op.drop_table("calls")
    op.drop_index("ix_call_sessions_account_start", table_name="call_sessions")
    op.drop_table("call_sessions")
    op.drop_index("ix_rule_scenarios_scenario_id", table_name="rule_scenarios")
    op.drop_table("rule_scenarios")
    op.drop_index("ix_rules_application_id", table_name="rules")
    op.drop_table("rules")
    op.drop_index("ix_scenarios_account_id", table_name="scenarios")
    op.drop_table("scenarios")
    op.drop_index("ix_applications_account_id", table_name="applications")
    op.drop_table("applications")
    op.drop_table("accounts")
