"""People's profiles

Revision ID: 0028
Revises:  time zone, language, avatar; e-mail change confirmations.:0027
Create Date: 2026-12-06 23:40:00.000000
"""

from collections.abc import Sequence

revision: str = "0028"
down_revision: str | None = " time zone, language, avatar; e-mail change confirmations.:0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
