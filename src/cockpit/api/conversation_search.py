"""Full-text search over the caller's conversations (titles and messages)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/conversations", tags=["conversations"])
