"""Billing (issue 17): plan, balance, invoices, Checkout, the customer portal, Stripe's webhook."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from cockpit.auth.dependencies import require
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.billing import service, webhook
from cockpit.kit.errors import InvalidInput
from cockpit.kit.web import AppSettings, DbSession

router = APIRouter(tags=["billing"])

Admin = Annotated[Actor, Depends(require(Permission.account_write))]
Owner = Annotated[Actor, Depends(require(Permission.owners_manage))]


class CheckoutIn(BaseModel):
    pack: int = Field(ge=0)


class UrlOut(BaseModel):
    url: str


AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?", re.ASCII)


class TopUpIn(BaseModel):
    credits: str = Field(max_length=40)
    reason: str = Field(min_length=1, max_length=250)


class TopUpOut(BaseModel):
    id: str
    credits: str
    description: str


@router.get("/billing")
async def get_billing(session: DbSession, actor: Admin, settings: AppSettings) -> dict[str, Any]:
    """The plan and its limits, this cycle's credits, the top-up packs and (when connected) invoices."""
    o = await service.billing_overview(session, actor, settings)
    return {
        "connected": o.connected,
        "plan": o.plan,
        "seat_limit": o.seat_limit,
        "included_credits": o.included_credits,
        "credits_per_cycle": str(o.credits_per_cycle),
        "top_ups": str(o.top_ups),
        "used": str(o.used),
        "held": str(o.held),
        "available": str(o.available),
        "packs": [
            {"pack": p.index, "credits": p.credits, "price_cents": p.price_cents, "currency": p.currency}
            for p in o.packs
        ],
        "invoices": o.invoices,
    }


@router.post("/billing/checkout", response_model=UrlOut)
async def start_checkout(body: CheckoutIn, session: DbSession, actor: Owner, settings: AppSettings) -> UrlOut:
    """A Stripe Checkout URL for a top-up pack (409 `billing_not_connected` without Stripe)."""
    return UrlOut(url=await service.checkout(session, actor, settings, body.pack))


@router.post("/billing/portal", response_model=UrlOut)
async def open_portal(session: DbSession, actor: Owner, settings: AppSettings) -> UrlOut:
    """A Stripe customer portal URL (409 `billing_not_connected` without Stripe)."""
    return UrlOut(url=await service.portal(session, actor, settings))


@router.post("/billing/webhook")
async def stripe_webhook(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    stripe_signature: Annotated[str, Header()] = "",
) -> dict[str, str]:
    """Stripe's events (no sign-in; the signature is required). A replayed event changes nothing."""
    payload = await request.body()
    return {"result": await webhook.handle_webhook(session, payload, stripe_signature, settings)}


@router.post("/credits/top-ups", response_model=TopUpOut, status_code=201)
async def add_credits(body: TopUpIn, session: DbSession, actor: Owner) -> TopUpOut:
    """Owners add credits to this cycle by hand, with a reason (audited; a ledger entry)."""
    text = body.credits.strip()
    if not AMOUNT.fullmatch(text):
        raise InvalidInput(
            "invalid_credits",
            "Credits must be a positive number such as 500 or 1250.5 (at most 6 decimals).",
            details=[{"field": "credits", "message": "not a number"}],
        )
    amount = Decimal(text)
    entry = await service.add_credits_by_hand(session, actor, amount, body.reason)
    return TopUpOut(id=str(entry.id), credits=str(entry.amount), description=entry.description)
