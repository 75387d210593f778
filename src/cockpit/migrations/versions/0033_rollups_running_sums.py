"""The person and token rollups keep running sums per local day (dims 'user+' and 'token+'; a
period's figures of every person are the difference of two days' rows) instead of blocks of 4, 16
and 64 days: every account's rollups are rebuilt by the next roll.

Marking an account's rollups as built in no zone ('') makes the next ``usage.rollup`` run rebuild
them from its calls (the path a change of time zone takes); until then its views read the calls, so
every figure stays exact meanwhile.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 09:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE usage_rollup_accounts SET zone = ''")


def downgrade() -> None:
    # The older code reads blocks of 4, 16 and 64 days of people and tokens, which this one does not
    # keep: drop the running sums and rebuild every account's rollups at the next roll.
    op.execute("DELETE FROM usage_rollups WHERE dim IN ('user+', 'token+')")
    op.execute("UPDATE usage_rollup_accounts SET zone = ''")
