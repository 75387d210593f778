"""Jobs and events: the background work of the account (issue 16)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["jobs"])
