"""The signed-in person's own profile, password and sessions (issue 17)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["profile"])
