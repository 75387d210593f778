"""Billing (issue 17): plan, balance, invoices, Checkout, the customer portal, Stripe's webhook."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["billing"])
