"""CONTROL → Notifications: templates, and the bell (issue 16)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
