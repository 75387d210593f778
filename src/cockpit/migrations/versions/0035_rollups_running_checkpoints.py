"""The running sums of people and tokens (dims 'user+' and 'token+') keep rows on checkpoint days
(every 4th local day, ``rollups.CHECKPOINT``) and on the newest day only, instead of every day: a
day's sums are its checkpoint's row and the day rows after it. An account whose people call on few
days kept a row per person per day from their first call on (107 million rows for 100 accounts of
100,000 calls each).

The rows of the checkpoint days and of each account's newest day are the rows the new code keeps
(every value with a call up to that day, its sums up to that day), so the upgrade only deletes the
others; its downgrade rebuilds every account's rollups at the next roll (the older code reads a row
of every day).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 15:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM usage_rollups
        WHERE dim IN ('user+', 'token+') AND level = 0 AND block % 4 <> 0
          AND block < (
            SELECT max(u.block) FROM usage_rollups AS u
            WHERE u.account_id = usage_rollups.account_id AND u.dim = usage_rollups.dim AND u.level = 0
          )
        """
    )


def downgrade() -> None:
    op.execute("UPDATE usage_rollup_accounts SET zone = ''")
