"""Agents and integrations (issue 14): the ``integrations`` and ``agents`` catalogues, OAuth tokens
of integrations, and the integration and tool of a recorded tool call.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("transport", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("openapi_document", sa.JSON(), nullable=True),
        sa.Column("auth_type", sa.String(length=40), nullable=False),
        sa.Column("auth_settings", sa.JSON(), nullable=False),
        sa.Column("secret_encrypted", sa.String(length=8000), nullable=True),
        sa.Column("secret_last4", sa.String(length=4), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("price_credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), server_default="30", nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("tools_listed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_test_ok", sa.Boolean(), nullable=True),
        sa.Column("last_test_message", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("integrations", "account_id", "accounts", "CASCADE"),
        _fk("integrations", "created_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
        sa.UniqueConstraint("account_id", "slug", name=op.f("uq_integrations_account_id_slug")),
    )
    op.create_index(op.f("ix_integrations_account_id"), "integrations", ["account_id"])
    op.create_table(
        "integration_tokens",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("integration_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("access_encrypted", sa.String(length=8000), nullable=False),
        sa.Column("refresh_encrypted", sa.String(length=8000), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scope", sa.String(length=1000), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("integration_tokens", "account_id", "accounts", "CASCADE"),
        _fk("integration_tokens", "integration_id", "integrations", "CASCADE"),
        _fk("integration_tokens", "user_id", "users", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_tokens")),
    )
    op.create_index(op.f("ix_integration_tokens_account_id"), "integration_tokens", ["account_id"])
    op.create_index(
        "ix_integration_tokens_integration_user", "integration_tokens", ["integration_id", "user_id"]
    )
    op.create_table(
        "agents",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("icon", sa.String(length=40), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_output_tokens", sa.Integer(), nullable=True),
        sa.Column("integration_ids", sa.JSON(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("starters", sa.JSON(), nullable=False),
        sa.Column("visibility", sa.String(length=20), nullable=False),
        sa.Column("group_ids", sa.JSON(), nullable=False),
        sa.Column("max_steps", sa.Integer(), server_default="5", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("agents", "account_id", "accounts", "CASCADE"),
        _fk("agents", "project_id", "projects", "CASCADE"),
        _fk("agents", "model_id", "models", "SET NULL"),
        _fk("agents", "created_by", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("account_id", "slug", name=op.f("uq_agents_account_id_slug")),
    )
    op.create_index(op.f("ix_agents_account_id"), "agents", ["account_id"])
    op.create_index(op.f("ix_agents_project_id"), "agents", ["project_id"])
    # Plain ADD COLUMN (no table copy on SQLite: the calls table may hold millions of rows).
    op.add_column("usage_requests", sa.Column("integration_id", sa.Uuid(), nullable=True))
    op.add_column("usage_requests", sa.Column("tool", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_requests", "tool")
    op.drop_column("usage_requests", "integration_id")
    op.drop_index(op.f("ix_agents_project_id"), table_name="agents")
    op.drop_index(op.f("ix_agents_account_id"), table_name="agents")
    op.drop_table("agents")
    op.drop_index("ix_integration_tokens_integration_user", table_name="integration_tokens")
    op.drop_index(op.f("ix_integration_tokens_account_id"), table_name="integration_tokens")
    op.drop_table("integration_tokens")
    op.drop_index(op.f("ix_integrations_account_id"), table_name="integrations")
    op.drop_table("integrations")
