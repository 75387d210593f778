"""The rollups keep two more pairs, user|model and user|agent (the pivot of people's activity reads
one page of people's cells from them): every account's rollups are rebuilt by the next roll.

Marking an account's rollups as built in no zone ('') makes the next ``usage.rollup`` run rebuild
them from its calls (the path a change of time zone takes); until then its views read the calls, so
every figure stays exact meanwhile.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 07:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE usage_rollup_accounts SET zone = ''")


def downgrade() -> None:
    # The older code never reads these pairs: drop them.
    op.execute("DELETE FROM usage_rollups WHERE dim IN ('user|model', 'user|agent')")
