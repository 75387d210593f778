"""Issue 17: the catalogue page(s) of the console."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
