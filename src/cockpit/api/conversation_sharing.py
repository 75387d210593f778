"""Sharing, administrator review, export and forking of conversations."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/conversations", tags=["conversations"])
