from fastapi import APIRouter, Depends

from cockpit.console.pages import (
    account,
    agent_wizard,
    agents,
    analytics,
    audit,
    auth,
    conversation_files,
    conversation_sharing,
    conversations,
    credits,
    credits_allocations,
    credits_requests,
    credits_settings,
    credits_statement,
    dashboard,
    groups,
    imports,
    integrations,
    invitations,
    jobs,
    models,
    notifications,
    policies,
    projects,
    requests,
    seats,
    support,
    tokens,
    users,
    webhooks,
)
from cockpit.console.web import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
# imports before users: /users/import must not be taken for a user id; agent_wizard before agents
# likewise (/agents/wizard).
for module in (
    auth,
    dashboard,
    tokens,
    audit,
    requests,
    analytics,
    credits,
    credits_allocations,
    credits_requests,
    credits_settings,
    credits_statement,
    account,
    imports,
    seats,
    invitations,
    users,
    groups,
    projects,
    agent_wizard,
    agents,
    integrations,
    models,
    policies,
    # the files, artifacts and sharing pages before conversations: /conversations/artifacts and
    # /conversations/review are not conversation ids.
    conversation_files,
    conversation_sharing,
    conversations,
    jobs,
    notifications,
    webhooks,
    support,
):
    router.include_router(module.router)
