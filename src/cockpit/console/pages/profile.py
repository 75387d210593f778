"""Issue 17: the profile page(s) of the console."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
