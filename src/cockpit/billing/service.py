"""Billing: the plan and limits, buying credits through Stripe Checkout, the customer portal, Stripe's
signed webhook (idempotent by event id, out-of-order safe) and credits added by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.billing.models import BillingAccount
from cockpit.config import Settings
from cockpit.credits import figures, ledger
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, EntryKind, LedgerEntry
from cockpit.kit.errors import CockpitError, Conflict, InvalidInput, NotFound
from cockpit.kit.text import is_storable
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account

TOP_UP_PREFIX = "Top-up"
MAX_TOP_UP = Decimal(1_000_000_000)
MAX_SEATS = 1_000_000
# What one cycle may be given on top of its credits per cycle (far inside the ledger's integers).
MAX_ADDED = Decimal(1_000_000_000_000)


class BadSignature(CockpitError):
    status = 400
    default_code = "bad_signature"


@dataclass(frozen=True)
class Pack:
    index: int
    credits: int
    price_cents: int
    currency: str


@dataclass
class Overview:
    connected: bool
    plan: str
    seat_limit: int | None
    included_credits: int | None
    credits_per_cycle: Decimal
    top_ups: Decimal
    used: Decimal
    held: Decimal
    packs: list[Pack]
    invoices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def available(self) -> Decimal:
        return self.credits_per_cycle + self.top_ups - self.used - self.held


def connected(settings: Settings) -> bool:
    return settings.stripe_secret_key is not None


def packs(settings: Settings) -> list[Pack]:
    return [Pack(i, c, p, cur) for i, (c, p, cur) in enumerate(settings.billing_top_up_packs)]


def _client(settings: Settings) -> stripe.StripeClient:
    if settings.stripe_secret_key is None:
        raise Conflict("billing_not_connected", "Billing is not connected (no Stripe key is configured).")
    bases: dict[str, str] = {}
    if settings.stripe_api_base:
        bases["api"] = settings.stripe_api_base.rstrip("/")
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value(),
        base_addresses=bases,  # type: ignore[arg-type]
        http_client=stripe.HTTPXClient(),
        max_network_retries=0,
    )


async def _billing_account(session: AsyncSession, account_id: uuid.UUID) -> BillingAccount | None:
    return await session.scalar(select(BillingAccount).where(BillingAccount.account_id == account_id))


async def _ensure_billing_account(session: AsyncSession, account_id: uuid.UUID) -> BillingAccount:
    row = await _billing_account(session, account_id)
    if row is None:
        row = BillingAccount(id=uuid.uuid4(), account_id=account_id, plan="", updated_at=utcnow())
        session.add(row)
        await session.flush()
    return row


async def _account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("account_not_found", "Account not found.")
    return account


async def billing_overview(session: AsyncSession, actor: Actor, settings: Settings) -> Overview:
    actor.require(Permission.account_write)
    account = await _account(session, actor.account_id)
    cycle = await current_cycle(session, account)
    numbers = await figures.account_figures(session, account, cycle)
    row = await _billing_account(session, account.id)
    invoices: list[dict[str, Any]] = []
    if connected(settings) and row is not None and row.stripe_customer_id:
        listed = await _client(settings).v1.invoices.list_async(
            {"customer": row.stripe_customer_id, "limit": 24}
        )
        for invoice in listed.data:
            inv: dict[str, Any] = invoice.to_dict()
            invoices.append(
                {
                    "id": str(inv.get("id") or ""),
                    "number": inv.get("number") or "",
                    "amount_due": int(inv.get("amount_due") or 0),
                    "currency": str(inv.get("currency") or "").upper(),
                    "status": inv.get("status") or "",
                    "created": int(inv.get("created") or 0),
                    "url": inv.get("hosted_invoice_url") or "",
                }
            )
    return Overview(
        connected=connected(settings),
        plan=(row.plan if row is not None and row.plan else "Standard"),
        seat_limit=row.seat_limit if row is not None else None,
        included_credits=row.included_credits if row is not None else None,
        credits_per_cycle=account.credits_per_cycle,
        top_ups=cycle.added_credits,
        used=numbers.used,
        held=numbers.held,
        packs=packs(settings),
        invoices=invoices,
    )


async def _customer(session: AsyncSession, actor: Actor, settings: Settings) -> tuple[BillingAccount, str]:
    client = _client(settings)
    # Under the account's lock: two first purchases at once make one Stripe customer, not two.
    await lock_account(session, actor.account_id)
    row = await _ensure_billing_account(session, actor.account_id)
    await session.refresh(row)
    if not row.stripe_customer_id:
        account = await _account(session, actor.account_id)
        customer = await client.v1.customers.create_async(
            {"name": account.name, "metadata": {"account_id": str(account.id)}}
        )
        row.stripe_customer_id, row.updated_at = customer.id, utcnow()
        await audit.record(
            session,
            actor,
            "billing.customer_created",
            target=Target("account", account.id, account.name),
            after={"stripe_customer_id": customer.id},
        )
    assert row.stripe_customer_id is not None
    return row, row.stripe_customer_id


async def checkout(session: AsyncSession, actor: Actor, settings: Settings, pack: int) -> str:
    """A Stripe Checkout Session (one payment) for a top-up pack: its URL."""
    actor.require(Permission.owners_manage)
    _client(settings)
    choices = packs(settings)
    if not 0 <= pack < len(choices):
        raise InvalidInput("unknown_pack", "No such top-up pack.")
    chosen = choices[pack]
    _row, customer = await _customer(session, actor, settings)
    # What the webhook checks the payment against: the credits are added only when the session paid
    # exactly this price in this currency.
    metadata = {
        "account_id": str(actor.account_id),
        "credits": str(chosen.credits),
        "price_cents": str(chosen.price_cents),
        "currency": chosen.currency.lower(),
    }
    created = await _client(settings).v1.checkout.sessions.create_async(
        {
            "mode": "payment",
            "customer": customer,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": chosen.currency,
                        "unit_amount": chosen.price_cents,
                        "product_data": {"name": f"{chosen.credits:,} credits"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": f"{settings.base_url}/billing?paid=1",
            "cancel_url": f"{settings.base_url}/billing",
        }
    )
    await audit.record(
        session,
        actor,
        "billing.checkout_started",
        target=Target("account", actor.account_id),
        after={"credits": chosen.credits, "price_cents": chosen.price_cents},
    )
    return str(created.url)


async def portal(session: AsyncSession, actor: Actor, settings: Settings) -> str:
    """A Stripe customer portal session (payment methods, invoices, plan): its URL."""
    actor.require(Permission.owners_manage)
    _row, customer = await _customer(session, actor, settings)
    created = await _client(settings).v1.billing_portal.sessions.create_async(
        {"customer": customer, "return_url": f"{settings.base_url}/billing"}
    )
    await audit.record(session, actor, "billing.portal_opened", target=Target("account", actor.account_id))
    return str(created.url)


async def add_credits(
    session: AsyncSession, actor: Actor, account: Account, amount: Decimal, description: str
) -> LedgerEntry:
    """Add ``amount`` to what the account may spend in its current cycle: the cycle's added credits
    (read by enforcement under the same account lock) and an ``extra_granted`` ledger entry."""
    account = await lock_account(session, account.id)
    cycle = await current_cycle(session, account)
    await session.execute(
        update(CreditCycle)
        .where(CreditCycle.id == cycle.id)
        .values(added_credits=CreditCycle.added_credits + amount)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(cycle, ["added_credits"])
    return ledger.append(
        session,
        account_id=account.id,
        cycle=cycle,
        kind=EntryKind.extra_granted,
        amount=amount,
        description=description,
        actor_label=actor.label[:254],
    )


async def add_credits_by_hand(
    session: AsyncSession, actor: Actor, amount: Decimal, reason: str
) -> LedgerEntry:
    """An owner adds credits to the account's current cycle (audited; a ledger entry)."""
    actor.require(Permission.owners_manage)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason_required", "Say why these credits are added.")
    if not is_storable(reason):
        raise InvalidInput(
            "invalid_text",
            "The reason contains characters that cannot be stored (NUL or a lone surrogate).",
            details=[{"field": "reason", "message": "contains characters that cannot be stored"}],
        )
    if (
        not amount.is_finite()
        or amount <= 0
        or amount > MAX_TOP_UP
        or amount != amount.quantize(Decimal("0.000001"))
    ):
        raise InvalidInput("invalid_credits", "Credits must be a positive amount (at most 6 decimals).")
    account = await lock_account(session, actor.account_id)
    if (await current_cycle(session, account)).added_credits + amount > MAX_ADDED:
        raise InvalidInput(
            "invalid_credits", f"At most {MAX_ADDED:,} credits can be added to one cycle.",
            details=[{"field": "credits", "message": "too many credits for one cycle"}],
        )  # fmt: skip
    entry = await add_credits(session, actor, account, amount, f"{TOP_UP_PREFIX} by hand: {reason}")
    await audit.record(
        session,
        actor,
        "billing.credits_added",
        target=Target("account", account.id, account.name),
        after={"credits": amount, "reason": reason},
    )
    return entry
