"""Billing with Stripe

Revision ID: 0027
Revises:  the account's plan and limits, Stripe customer, processed webhook events, top-ups.:0026
Create Date: 2026-12-06 23:40:00.000000
"""

from collections.abc import Sequence

revision: str = "0027"
down_revision: str | None = (
    " the account's plan and limits, Stripe customer, processed webhook events, top-ups.:0026"
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
