"""The REST API under /api/v1: one router per domain."""

from fastapi import APIRouter

from cockpit.accounts.api import router as accounts_router
from cockpit.audit.api import router as audit_router
from cockpit.auth.api import router as auth_router

router = APIRouter(prefix="/api/v1")
for domain_router in (auth_router, accounts_router, audit_router):
    router.include_router(domain_router)
