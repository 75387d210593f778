"""Sharing, review and export of conversations in the console."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
