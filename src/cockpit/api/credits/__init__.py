"""Credits & Allocations under /api/v1: settings and cycles, allocations, requests and statements."""

from fastapi import APIRouter

router = APIRouter(tags=["credits"])

# Each part adds its routes when it exists (imported below, after `router`).
from cockpit.api.credits import allocations, pace, requests, settings  # noqa: E402,F401
