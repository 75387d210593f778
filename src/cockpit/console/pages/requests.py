"""The request log: every gateway call (administrators) or one's own calls (members)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.analytics import labels
from cockpit.analytics import service as analytics
from cockpit.analytics.filters import MAX_RANGE, Dimension, Filters
from cockpit.auth import tokens
from cockpit.authz.permissions import Permission
from cockpit.console.names import names_of
from cockpit.console.web import SignedIn, Viewer, render
from cockpit.groups import service as groups_service
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import PageParams
from cockpit.kit.time import utcnow
from cockpit.kit.web import DbSession
from cockpit.projects import service as projects
from cockpit.usage import service as usage
from cockpit.usage.models import CallStatus
from cockpit.usage.queries import RequestFilters
from cockpit.users import service as users_service

router = APIRouter(prefix="/requests")

RANGES: dict[str, tuple[str, timedelta | None]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "60d": ("Last 60 days", timedelta(days=60)),
    "custom": ("Custom range", None),
}
DEFAULT_RANGE = "7d"
COUNT_CAP = 10_000  # the pager says "10,000+" beyond
STATUSES = {
    CallStatus.success.value: "Success",
    CallStatus.error.value: "Error",
    CallStatus.client_disconnected.value: "Disconnected",
}
OPERATIONS = {"chat": "Chat", "embedding": "Embeddings"}
DIRECT = "__direct__"  # the agent filter's value for calls made without an agent (as on Cost tracking)
PER_PAGE = 50


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_input", message, details=[{"field": field, "message": message}])


def _local(value: str, viewer: Viewer, field: str) -> datetime | None:
    """The console's datetime-local inputs are in the person's time zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(field, f"'{value}' is not a valid date and time.") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(viewer.timezone))


def _uuid(value: str, field: str, label: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError as exc:
        raise _invalid(field, f"Unknown {label}.") from exc


def _filters(viewer: Viewer, form: dict[str, str]) -> RequestFilters:
    since = until = None
    if form["range"] == "custom":
        since, until = _local(form["since"], viewer, "since"), _local(form["until"], viewer, "until")
        if since and until and since >= until:
            raise _invalid("since", "'From' must be before 'To'.")
    elif form["range"] in RANGES:
        delta = RANGES[form["range"]][1]
        since = utcnow() - delta if delta else None
    else:
        raise _invalid("range", "Unknown time range.")
    if form["status"] and form["status"] not in STATUSES:
        raise _invalid("status", "Unknown status.")
    if form["operation"] and form["operation"] not in OPERATIONS:
        raise _invalid("operation", "Unknown operation.")
    agent = form["agent"].strip()
    return RequestFilters(
        since=since,
        until=until,
        model=form["model"] or None,
        user_id=_uuid(form["user"], "user", "user") if viewer.can(Permission.usage_read_all) else None,
        project_id=_uuid(form["project"], "project", "project"),
        agent_id="" if agent == DIRECT else (agent or None),
        api_token_id=_uuid(form["token"], "token", "token"),
        status=CallStatus(form["status"]) if form["status"] else None,
        group_id=_uuid(form["group"], "group", "group"),
        operation=form["operation"] or None,
    )


def _pretty(content: object) -> str | None:
    """Stored content for a <pre>: JSON indented (an answer that is JSON too), other text as it is."""
    if content is None:
        return None
    if isinstance(content, str):
        try:
            parsed = json.loads(content)
        except ValueError:
            return content
        if not isinstance(parsed, dict | list):
            return content
        content = parsed
    return json.dumps(content, indent=2, ensure_ascii=False)


Text = Annotated[str, Query(max_length=200)]


@router.get("")
async def requests_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    period: Annotated[str, Query(alias="range", max_length=20)] = DEFAULT_RANGE,
    since: Text = "",
    until: Text = "",
    model: Text = "",
    status: Text = "",
    user: Text = "",
    project: Text = "",
    agent: Annotated[str, Query(max_length=100)] = "",
    token: Text = "",
    group: Text = "",
    operation: Text = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    admin = viewer.can(Permission.usage_read_all)
    form = {
        "range": period, "since": since, "until": until, "model": model, "status": status,
        "user": user if admin else "", "project": project, "agent": agent, "token": token,
        "group": group, "operation": operation,
    }  # fmt: skip
    error = None
    try:
        filters = _filters(viewer, form)
    except InvalidInput as exc:
        error, form["range"] = exc.message, DEFAULT_RANGE
        filters = _filters(viewer, {key: "" for key in form} | {"range": DEFAULT_RANGE})
    params = PageParams(page=page, per_page=PER_PAGE)
    # Counted up to a cap: counting a month of a busy account's calls took 1.6 s (10M calls).
    results = await usage.search_requests(session, viewer.actor, filters, params, count_cap=COUNT_CAP)
    query = urlencode({key: value for key, value in form.items() if value})
    choices = await _agent_choices(session, viewer, filters)
    # An agent run records the agent's id: shown by its name ("Deleted agent" once it is gone).
    agent_ids = {*choices, *(r.record.agent_id for r in results.items if r.record.agent_id), agent}
    agent_names = await labels.names(
        session, viewer.actor.account_id, Dimension.agent, agent_ids - {"", DIRECT}
    )
    context: dict[str, Any] = {
        "page": results,
        "form": form,
        "error": error,
        "admin": admin,
        "query": query,
        "ranges": {key: label for key, (label, _) in RANGES.items()},
        "statuses": STATUSES,
        "operations": OPERATIONS,
        "groups": await groups_service.groups_of(session, viewer.actor.account_id)
        if viewer.can(Permission.users_read)
        else [],
        "models": await usage.model_names(session, viewer.actor),
        "users": await users_service.list_all(session, viewer.actor.account_id) if admin else [],
        "projects": [p for p, _ in await projects.list_projects(session, viewer.actor)],
        # The agent and token filters are searchable pickers: names shown, ids sent.
        "agents": [(a, agent_names.get(a, a)) for a in choices],
        "agent_names": agent_names,
        "tokens": [
            (str(t.id), f"{t.name} ({email})" if admin else t.name)
            for t, email in await tokens.token_choices(session, viewer.actor)
        ],
        "any_calls": bool(results.items) or await usage.has_calls(session, viewer.actor),
        "gateway_url": request.app.state.settings.base_url.rstrip("/") + "/v1",
    }
    context["token_label"] = next((label for i, label in context["tokens"] if i == token), token)
    # Calls without an agent (a link from Cost tracking's "Direct API" row) are named like there.
    context["agent_label"] = "Direct API" if agent == DIRECT else agent_names.get(agent, agent)
    partial = request.headers.get("hx-target") == "requests-results"
    return render(request, "requests/_results.html" if partial else "requests/index.html", context)


@router.get("/{request_id}")
async def request_detail(
    request: Request, session: DbSession, viewer: SignedIn, request_id: uuid.UUID
) -> Response:
    row = await usage.access_request(session, viewer.actor, request_id)
    r = row.record
    ids = (r.model_id, r.provider_id, r.api_token_id, r.group_id)
    account_id = viewer.actor.account_id
    agent = await labels.names(session, account_id, Dimension.agent, [r.agent_id] if r.agent_id else [])
    integration = await labels.names(
        session, account_id, Dimension.integration, [r.integration_id] if r.integration_id else []
    )
    context = {
        "agent_name": agent.get(r.agent_id or "", ""),
        "integration_name": integration.get(r.integration_id, "Deleted integration")
        if r.integration_id
        else "",
        "names": await names_of(session, viewer.actor.account_id, ids),
        "request_text": _pretty(row.record.request_content),
        "response_text": _pretty(row.record.response_content),
        "row": row,
        "r": row.record,
        "store_enabled": viewer.account.store_request_content,
        "retention_days": viewer.account.content_retention_days,
    }
    return render(request, "requests/detail.html", context)


async def _agent_choices(session: DbSession, viewer: Viewer, filters: RequestFilters) -> list[str]:
    """The agents of the period's calls the viewer may see, for the agent picker: from the rollups
    when the period is bounded (a DISTINCT over a month of calls took a second at 10M calls)."""
    since = filters.since
    until = filters.until or utcnow() + timedelta(minutes=1)  # a range preset: up to now
    if (
        since is not None
        and since.tzinfo is not None
        and until.tzinfo is not None
        and since < until <= since + MAX_RANGE
    ):
        scope = await analytics.scope_for(session, viewer.actor)
        return await analytics.agents_in(session, scope, Filters(since, until))
    return await usage.agent_choices(session, viewer.actor, since=since, until=until)
