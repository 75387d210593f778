"""The REST API under /api/v1: one router per domain."""

from fastapi import APIRouter

from cockpit.accounts.api import router as accounts_router
from cockpit.audit.api import router as audit_router
from cockpit.auth.api import router as auth_router
from cockpit.credits.api import router as credits_router
from cockpit.groups.api import router as groups_router
from cockpit.invitations.api import router as invitations_router
from cockpit.policies.api import router as policies_router
from cockpit.projects.api import router as projects_router
from cockpit.providers.api import router as providers_router
from cockpit.usage.api import router as usage_router
from cockpit.users.api import router as users_router

router = APIRouter(prefix="/api/v1")
for domain_router in (
    auth_router,
    accounts_router,
    users_router,
    invitations_router,
    groups_router,
    projects_router,
    providers_router,
    audit_router,
    usage_router,
    credits_router,
    policies_router,
):
    router.include_router(domain_router)
