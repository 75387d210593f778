"""The REST API under /api/v1: one router per domain, thin (parse -> service -> schema).

The routes are a surface, like the console: they sit above every domain package (the import contract
in pyproject.toml), so that a route may call the services of several domains and no domain imports
the sign-in machinery (``auth.dependencies``) that knows about users, projects and policies.
"""

from fastapi import APIRouter

from cockpit.api.accounts import router as accounts_router
from cockpit.api.agent_drafts import router as agent_drafts_router
from cockpit.api.agents import router as agents_router
from cockpit.api.analytics import router as analytics_router
from cockpit.api.audit import router as audit_router
from cockpit.api.auth import router as auth_router
from cockpit.api.billing import router as billing_router
from cockpit.api.catalogue import router as catalogue_router
from cockpit.api.conversation_files import router as conversation_files_router
from cockpit.api.conversation_search import router as conversation_search_router
from cockpit.api.conversation_sharing import router as conversation_sharing_router
from cockpit.api.conversations import router as conversations_router
from cockpit.api.credits import router as credits_router
from cockpit.api.groups import router as groups_router
from cockpit.api.integrations import router as integrations_router
from cockpit.api.invitations import router as invitations_router
from cockpit.api.jobs import router as jobs_router
from cockpit.api.notifications import router as notifications_router
from cockpit.api.policies import router as policies_router
from cockpit.api.profile import router as profile_router
from cockpit.api.projects import router as projects_router
from cockpit.api.providers import router as providers_router
from cockpit.api.tickets import router as tickets_router
from cockpit.api.usage import router as usage_router
from cockpit.api.users import router as users_router
from cockpit.api.webhooks import router as webhooks_router

router = APIRouter(prefix="/api/v1")
for domain_router in (
    auth_router,
    accounts_router,
    users_router,
    invitations_router,
    groups_router,
    projects_router,
    agent_drafts_router,
    agents_router,
    # search and sharing before conversations: /conversations/search, /conversations/shared and
    # /conversations/review are not conversation ids.
    conversation_search_router,
    conversation_sharing_router,
    conversations_router,
    conversation_files_router,
    catalogue_router,  # before providers: /models/catalogue is not a model id
    providers_router,
    integrations_router,
    audit_router,
    usage_router,
    analytics_router,
    credits_router,
    policies_router,
    jobs_router,
    notifications_router,
    webhooks_router,
    tickets_router,
    billing_router,
    profile_router,
):
    router.include_router(domain_router)
