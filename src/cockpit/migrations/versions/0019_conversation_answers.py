"""The code of a refused answer in a conversation (what the chat offers: request credits, …), and
the state of an agent's run paused for the person's approval of a tool call.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversation_messages", sa.Column("error_code", sa.String(length=64), nullable=True))
    op.add_column("conversation_messages", sa.Column("pending", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("conversation_messages", "pending")
    op.drop_column("conversation_messages", "error_code")
