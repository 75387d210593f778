"""Billing with Stripe: the account's plan and limits, its Stripe customer, processed webhook events, top-ups.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_accounts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=100), nullable=True),
        sa.Column("plan", sa.String(length=100), nullable=False),
        sa.Column("seat_limit", sa.Integer(), nullable=True),
        sa.Column("included_credits", sa.Integer(), nullable=True),
        sa.Column("subscription_status", sa.String(length=40), nullable=False),
        sa.Column("subscription_event_created", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("account_id", name="uq_billing_accounts_account_id"),
        sa.UniqueConstraint("stripe_customer_id", name="uq_billing_accounts_stripe_customer_id"),
    )
    op.create_table(
        "billing_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("stripe_event_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.UniqueConstraint("stripe_event_id", name="uq_billing_events_stripe_event_id"),
    )
    op.create_index("ix_billing_events_account_id", "billing_events", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_billing_events_account_id", table_name="billing_events")
    op.drop_table("billing_events")
    op.drop_table("billing_accounts")
