"""The day rows of models, agents and groups count their distinct people, as the whole-account day
rows do (from the day's 'model|user', 'agent|user' and 'group|user' rows): a daily timeline under one
of these filters reads them instead of every person row of the period.

Counted here from the rows already kept (no rebuild); a roll recounts the days it touches.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 12:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE usage_rollups SET people = (
            SELECT count(*) FROM usage_rollups AS u
            WHERE u.account_id = usage_rollups.account_id AND u.dim = usage_rollups.dim || '|user'
              AND u.level = 0 AND u.block = usage_rollups.block AND u.key = usage_rollups.key
              AND u.key2 <> ''
        )
        WHERE dim IN ('model', 'agent', 'group') AND level = 0
        """
    )


def downgrade() -> None:
    op.execute("UPDATE usage_rollups SET people = 0 WHERE dim IN ('model', 'agent', 'group') AND level = 0")
