"""Files attached to conversations and the artifacts answers produce.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "conversation_files",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversation_files", "account_id", "accounts", "CASCADE"),
        _fk("conversation_files", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_files", "user_id", "users", "CASCADE"),
        _fk("conversation_files", "message_id", "conversation_messages", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_files")),
    )
    op.create_index(op.f("ix_conversation_files_account_id"), "conversation_files", ["account_id"])
    op.create_index(op.f("ix_conversation_files_message_id"), "conversation_files", ["message_id"])
    op.create_index(
        "ix_conversation_files_conversation_created", "conversation_files", ["conversation_id", "created_at"]
    )
    op.create_table(
        "conversation_artifacts",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("lineage_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("latest", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=50), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("conversation_artifacts", "account_id", "accounts", "CASCADE"),
        _fk("conversation_artifacts", "conversation_id", "conversations", "CASCADE"),
        _fk("conversation_artifacts", "message_id", "conversation_messages", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_artifacts")),
        sa.UniqueConstraint(
            "lineage_id", "version", name=op.f("uq_conversation_artifacts_lineage_id_version")
        ),
    )
    op.create_index(op.f("ix_conversation_artifacts_account_id"), "conversation_artifacts", ["account_id"])
    op.create_index(op.f("ix_conversation_artifacts_message_id"), "conversation_artifacts", ["message_id"])
    op.create_index(
        "ix_conversation_artifacts_conversation_created",
        "conversation_artifacts",
        ["conversation_id", "created_at"],
    )
    op.create_index(
        "ix_conversation_artifacts_account_latest_created",
        "conversation_artifacts",
        ["account_id", "latest", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("conversation_artifacts")
    op.drop_table("conversation_files")
