"""Secrets and signatures per the Standard Webhooks spec (the ``standardwebhooks`` package signs).

A secret is ``whsec_`` + base64 of 32 random bytes. Each attempt is signed afresh: the signature
covers ``<webhook-id>.<webhook-timestamp>.<body>``, so a replay keeps the ``webhook-id`` (the
receiver's idempotency key) and gets a new timestamp and signature. During the 24 hours after a
rotation the previous secret signs too: ``webhook-signature`` then holds two signatures, separated
by a space, and a receiver that knows either secret accepts the message.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
USER_AGENT = "Cockpit-Webhooks/1.0"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes POSTed (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def headers_for(
    message_id: str, timestamp: datetime, body: bytes, signing_secrets: Sequence[str]
) -> dict[str, str]:
    """The request headers of one attempt; the signatures of every secret given, space-separated."""
    signatures = " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in signing_secrets)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
