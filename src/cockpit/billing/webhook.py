"""Stripe's webhook (issue 17): signature-checked, idempotent by event id, out-of-order safe.

- A paid Checkout session (``checkout.session.completed`` paid at once, or
  ``checkout.session.async_payment_succeeded`` for delayed methods) adds its credits to the
  account's current cycle once: the session's own id is recorded too, so the two events of one
  session cannot both credit it. The credits are added only when the session names the customer's
  own account and paid exactly the price and currency Cockpit asked for (``checkout`` puts them in
  the metadata); anything else is recorded and audited as unmatched, and adds nothing.
- A subscription event sets the plan, serialised with the account's other writers (its lock is
  taken before the event's age is compared, so of two concurrent events the newer wins). Its
  limits (seats per product, included credits as the credits per cycle) apply while the
  subscription is active, trialing or past due; they are not applied while its first payment is
  incomplete, and the account's own limits from before come back when it ends (deleted, canceled,
  unpaid, expired or paused).
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.billing.models import BillingAccount, BillingEvent
from cockpit.billing.service import MAX_SEATS, MAX_TOP_UP, TOP_UP_PREFIX, BadSignature, add_credits
from cockpit.config import Settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.settings import set_cycle_credits
from cockpit.kit.errors import Conflict
from cockpit.kit.time import utcnow
from cockpit.tenancy.lock import lock_account
from cockpit.tenancy.models import Account

log = logging.getLogger(__name__)

PAID = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# Subscription states whose plan limits apply; and those that end the plan (its limits go back).
APPLIES = frozenset({"active", "trialing", "past_due"})
ENDS = frozenset({"canceled", "unpaid", "incomplete_expired", "paused"})
PRODUCTS = ("copilot", "console", "compute")


def count(value: Any) -> int | None:
    """A positive whole number from Stripe metadata (text) or a quantity; None when absent or not one."""
    text = str(value).strip() if value is not None else ""
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) <= 0:
        return None
    return int(text)


async def _record(
    session: AsyncSession,
    event_id: str,
    kind: str,
    created: int,
    account_id: uuid.UUID | None,
    outcome: str,
) -> bool:
    """Insert a processed event's row; False when that id was processed before (unique)."""
    try:
        async with session.begin_nested():
            session.add(
                BillingEvent(
                    id=uuid.uuid4(),
                    stripe_event_id=event_id[:100],
                    type=kind[:100],
                    account_id=account_id,
                    created=created,
                    processed_at=utcnow(),
                    outcome=outcome,
                )
            )
    except IntegrityError:
        return False
    return True


async def _billing_row(session: AsyncSession, customer: Any) -> BillingAccount | None:
    if not customer:
        return None
    return await session.scalar(
        select(BillingAccount).where(BillingAccount.stripe_customer_id == str(customer))
    )


def _verify(payload: bytes, signature: str, settings: Settings) -> Any:
    if settings.stripe_webhook_secret is None:
        raise Conflict("billing_not_connected", "Billing is not connected.")
    try:
        return stripe.Webhook.construct_event(
            payload, signature, settings.stripe_webhook_secret.get_secret_value()
        )
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise BadSignature("bad_signature", "The Stripe signature could not be verified.") from exc


async def handle_webhook(session: AsyncSession, payload: bytes, signature: str, settings: Settings) -> str:
    """Verify and apply one Stripe event; returns what was done ("applied", "duplicate", "ignored",
    "stale", "unmatched")."""
    event = _verify(payload, signature, settings)
    event_id, kind, created = str(event["id"]), str(event["type"]), int(event["created"])
    if await session.scalar(select(BillingEvent.id).where(BillingEvent.stripe_event_id == event_id)):
        return "duplicate"
    obj: dict[str, Any] = event.to_dict()["data"]["object"]
    row = await _billing_row(session, obj.get("customer"))
    if row is not None and (kind in PAID or kind.startswith("customer.subscription.")):
        # Every change of the account's billing waits for the account's lock, first.
        await lock_account(session, row.account_id)
        await session.refresh(row)
        if kind in PAID:
            return await _paid(session, event_id, kind, created, obj, row)
        return await _subscription(session, event_id, kind, created, obj, row)
    if not await _record(session, event_id, kind, created, row.account_id if row else None, "ignored"):
        return "duplicate"
    return "ignored"


async def _paid(
    session: AsyncSession, event_id: str, kind: str, created: int, obj: dict[str, Any], row: BillingAccount
) -> str:
    metadata = obj.get("metadata") or {}
    credits = count(metadata.get("credits"))
    if obj.get("payment_status") != "paid":
        outcome = "ignored"  # a delayed payment: its async_payment_succeeded event adds the credits
    elif metadata.get("account_id") != str(row.account_id):
        outcome = "ignored"  # the metadata must name the customer's own account
    elif (
        credits is None
        or credits > MAX_TOP_UP
        or count(metadata.get("price_cents")) is None
        or obj.get("amount_total") != count(metadata.get("price_cents"))
        or str(obj.get("currency") or "").lower() != str(metadata.get("currency") or "").lower()
    ):
        outcome = "unmatched"  # not what Cockpit asked for: a person looks at it
    else:
        outcome = "applied"
    if not await _record(session, event_id, kind, created, row.account_id, outcome):
        return "duplicate"
    account = await session.get(Account, row.account_id)
    if account is None:
        return "ignored"
    actor = Actor.system(account.id, label="Stripe")
    if outcome == "unmatched":
        log.warning("a Stripe payment did not match the price asked for; no credits were added")
        await audit.record(
            session, actor, "billing.payment_unmatched", target=Target("account", account.id, account.name),
            after={"event": event_id, "amount_total": obj.get("amount_total"),
                   "currency": obj.get("currency")},
        )  # fmt: skip
        return outcome
    if outcome != "applied" or credits is None:
        return outcome
    # One session credits once, whichever of its events comes (completed, async_payment_succeeded).
    if not await _record(
        session, f"session:{obj.get('id')}", "checkout.session", created, account.id, "applied"
    ):
        return "duplicate"
    amount = Decimal(credits)
    await add_credits(session, actor, account, amount, f"{TOP_UP_PREFIX}: {amount:,} credits bought")
    await audit.record(
        session, actor, "billing.credits_bought", target=Target("account", account.id, account.name),
        after={"credits": amount, "amount_total": obj.get("amount_total"), "event": event_id},
    )  # fmt: skip
    return outcome


async def _subscription(
    session: AsyncSession, event_id: str, kind: str, created: int, obj: dict[str, Any], row: BillingAccount
) -> str:
    # Strictly older than the last one applied: stale (the same second: in the order they came).
    outcome = "stale" if created < row.subscription_event_created else "applied"
    if not await _record(session, event_id, kind, created, row.account_id, outcome):
        return "duplicate"
    account = await session.get(Account, row.account_id)
    if outcome != "applied" or account is None:
        return outcome
    before = {"plan": row.plan, "seat_limit": row.seat_limit, "included_credits": row.included_credits}
    if kind == "customer.subscription.deleted":
        row.plan, row.seat_limit, row.included_credits, row.subscription_status = "", None, None, "canceled"
    else:
        item = ((obj.get("items") or {}).get("data") or [{}])[0]
        price = item.get("price") or {}
        meta = {**(price.get("metadata") or {}), **(obj.get("metadata") or {})}
        row.plan = str(meta.get("plan") or price.get("nickname") or price.get("id") or "")[:100]
        row.seat_limit = count(meta.get("seats")) or count(item.get("quantity"))
        row.included_credits = count(meta.get("credits"))
        row.subscription_status = str(obj.get("status") or "")[:40]
    if row.subscription_status in APPLIES:
        await _apply_plan(session, account, row)
    elif row.subscription_status in ENDS:
        await _give_back(session, account, row)
    row.subscription_event_created, row.updated_at = created, utcnow()
    await audit.record(
        session, Actor.system(account.id, label="Stripe"), "billing.plan_changed",
        target=Target("account", account.id, account.name), before=before,
        after={"plan": row.plan, "seat_limit": row.seat_limit, "included_credits": row.included_credits,
               "status": row.subscription_status},
    )  # fmt: skip
    return outcome


def _seats(account: Account) -> dict[str, int]:
    return {product: int(getattr(account, f"seat_limit_{product}")) for product in PRODUCTS}


async def _apply_plan(session: AsyncSession, account: Account, row: BillingAccount) -> None:
    """The plan's limits become the account's (the account's own are kept to give back): its seats for
    each product, its included credits as the credits per cycle (at once, for the current cycle too,
    with the change in the ledger). A limit the plan does not state is left as it is."""
    kept = dict(row.limits_before or {})
    if row.seat_limit is not None:
        kept.setdefault("seats", _seats(account))
        seats = min(row.seat_limit, MAX_SEATS)
        account.seat_limit_copilot = account.seat_limit_console = account.seat_limit_compute = seats
    if row.included_credits is not None:
        kept.setdefault("credits_per_cycle", str(account.credits_per_cycle))
        credits = Decimal(min(row.included_credits, int(MAX_TOP_UP)))
        cycle = await current_cycle(session, account)
        set_cycle_credits(session, account, cycle, credits, actor_label="Stripe")
    row.limits_before = kept or None


async def _give_back(session: AsyncSession, account: Account, row: BillingAccount) -> None:
    """The subscription ended: the account's own limits from before the plan come back."""
    kept = row.limits_before or {}
    seats = kept.get("seats")
    if isinstance(seats, dict):
        for product in PRODUCTS:
            if isinstance(seats.get(product), int):
                setattr(account, f"seat_limit_{product}", seats[product])
    if "credits_per_cycle" in kept:
        cycle = await current_cycle(session, account)
        set_cycle_credits(
            session, account, cycle, Decimal(str(kept["credits_per_cycle"])), actor_label="Stripe"
        )
    row.limits_before = None
