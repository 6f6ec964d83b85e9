"""Service-account keys with their roles, and account secrets.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key_name", sa.String(50), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name="fk_api_keys_account_id_accounts"),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "api_key_roles",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("role_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.key_id"], ondelete="CASCADE",
                                name="fk_api_key_roles_key_id_api_keys"),
        sa.PrimaryKeyConstraint("key_id", "role_id", name="pk_api_key_roles"),
    )
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("secret_name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("secret_value", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("modified", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE",
                                name="fk_secrets_account_id_accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_secrets"),
        sa.UniqueConstraint("account_id", "secret_name", name="uq_secrets_account_id"),
    )
    op.create_index("ix_secrets_account_id", "secrets", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_secrets_account_id", table_name="secrets")
    op.drop_table("secrets")
    op.drop_table("api_key_roles")
    op.drop_index("ix_api_keys_account_id", table_name="api_keys")
    op.drop_table("api_keys")
