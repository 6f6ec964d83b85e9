"""Per-turn Voice AI latency in the session CDR.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_sessions") as batch:
        batch.add_column(sa.Column("voice_ai_turns", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_sessions") as batch:
        batch.drop_column("voice_ai_turns")
