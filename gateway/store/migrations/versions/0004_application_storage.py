"""ApplicationStorage: key-value pairs per application, with an expiry time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "application_storage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("storage_value", sa.Text(), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("modified", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"], ondelete="CASCADE",
                                name="fk_application_storage_application_id_applications"),
        sa.PrimaryKeyConstraint("id", name="pk_application_storage"),
        sa.UniqueConstraint("application_id", "storage_key",
                            name="uq_application_storage_application_id"),
    )
    op.create_index("ix_application_storage_app_expire", "application_storage",
                    ["application_id", "expire_at"])


def downgrade() -> None:
    op.drop_index("ix_application_storage_app_expire", table_name="application_storage")
    op.drop_table("application_storage")
