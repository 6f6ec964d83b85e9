"""Recordings: one row per finished recording (Voximplant's RecordType).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("record_key", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=True),
        sa.Column("record_name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name="pk_recordings"),
        sa.UniqueConstraint("record_key", name="uq_recordings_record_key"),
    )
    op.create_index("ix_recordings_account_session", "recordings",
                    ["account_id", "session_id"])


def downgrade() -> None:
    op.drop_index("ix_recordings_account_session", table_name="recordings")
    op.drop_table("recordings")
