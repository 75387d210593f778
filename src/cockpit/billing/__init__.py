"""Billing (issue 17): the account's plan and limits, buying credits and managing the plan through
Stripe (Checkout, the customer portal, signed webhooks), and credits added by hand without Stripe."""
