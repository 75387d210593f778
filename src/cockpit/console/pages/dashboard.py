from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cockpit.audit import service as audit
from cockpit.audit.queries import AuditFilters
from cockpit.auth import tokens
from cockpit.authz.permissions import Permission
from cockpit.console.names import audit_names
from cockpit.console.web import SignedIn, render
from cockpit.credits import settings as credits
from cockpit.credits.amounts import grouped
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.policies.service import feature_allowed
from cockpit.users import service as users_service
from cockpit.users.models import UserStatus

router = APIRouter()


@router.get("/")
async def dashboard(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    actor = viewer.actor
    my_tokens = await tokens.list_tokens(session, actor)
    context: dict[str, object] = {
        "active_tokens": sum(1 for t in my_tokens if tokens.token_status(t) == "active"),
        "members": await users_service.count_users(session, actor.account_id, status=UserStatus.active),
    }
    mine = await credits.my_credits(session, actor)
    if mine is not None and mine.warning:
        context.update(
            mine=mine,
            credits=grouped,
            can_request=await feature_allowed(session, actor, "credit_requests.create"),
        )
    if actor.can(Permission.audit_read):
        week = await audit.search(
            session, actor, AuditFilters(since=utcnow() - timedelta(days=7)), PageParams(1, 8)
        )
        names = await audit_names(session, actor.account_id, week.items)
        context.update(recent=week.items, changes_this_week=week.total, names=names)
    return render(request, "dashboard/index.html", context)
