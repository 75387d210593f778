"""Files attached to conversations, and the artifacts answers produce."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["conversations"])
