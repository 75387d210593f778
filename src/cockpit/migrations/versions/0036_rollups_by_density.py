"""Each account's rollups say whether they keep the person dimensions (``people``: people, tokens,
their running sums and the pairs with people) and how many calls they hold (``calls``). An account
keeps them only once it holds ``COCKPIT_ROLLUP_PEOPLE_FROM`` calls (rebuilt then, as for a time-zone
change): below that its person views read its calls, which are few, and its rollups stay small (an
account of 100,000 calls from 5,000 people kept ~1.8 million person rows).

Accounts rolled before keep what they have (``people`` true, nothing rebuilt); ``calls`` is counted
from their recorded calls. The downgrade marks the accounts without person rows for a rebuild (the
older code reads them for every account).

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_rollup_accounts") as batch:
        batch.add_column(sa.Column("people", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("calls", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        """
        UPDATE usage_rollup_accounts SET calls = (
            SELECT count(*) FROM usage_requests AS u WHERE u.account_id = usage_rollup_accounts.account_id
        )
        """
    )


def downgrade() -> None:
    op.execute("UPDATE usage_rollup_accounts SET zone = '' WHERE NOT people")
    with op.batch_alter_table("usage_rollup_accounts") as batch:
        batch.drop_column("calls")
        batch.drop_column("people")
