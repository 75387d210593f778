"""People's profiles: time zone, language (date and number style) and avatar colour.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: None means "as the organisation" (its time zone and date format).
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("avatar_colour", sa.String(length=20), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35 does it in place): a batch copy of users would drop the
    # table, and every row referencing a user with ON DELETE CASCADE would go with it.
    for column in ("avatar_colour", "locale", "timezone"):
        op.drop_column("users", column)
