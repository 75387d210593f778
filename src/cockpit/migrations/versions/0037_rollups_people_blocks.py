"""An account whose rollups keep no people (``people`` false) now keeps its people's sums in blocks
of 16 days (dim ``user/16``, level 2 only), from which its person views read whole blocks and the
calls around them rather than every call of the period. Such accounts are marked for a rebuild (as
for a time-zone change): until the job has rebuilt one, its views read its calls.

The downgrade drops those rows (the older code neither keeps nor reads them).

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-08 01:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE usage_rollup_accounts SET zone = '' WHERE NOT people")


def downgrade() -> None:
    op.execute("DELETE FROM usage_rollups WHERE dim = 'user/16'")
