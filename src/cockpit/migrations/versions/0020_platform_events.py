"""Platform events (issue 16): each event once, in the transaction that caused it (an outbox).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_platform_events_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "platform_events",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("account_id", "accounts", "CASCADE"),
        _fk("person_id", "users", "SET NULL"),
        _fk("group_id", "groups", "SET NULL"),
        _fk("actor_id", "users", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_events")),
    )
    op.create_index(
        "ix_platform_events_account_dedupe", "platform_events", ["account_id", "dedupe_key"], unique=True
    )
    op.create_index("ix_platform_events_account_created", "platform_events", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_table("platform_events")
