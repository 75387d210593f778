"""The guided agent wizard: (1) describe the agent in plain words, (2) a model drafts every field
(a metered call through the gateway, charged to the person), (3) review and edit the draft in the
agent form, (4) try the unsaved configuration in a preview chat, (5) publish it (the create path of
the manual form)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from cockpit.agents import service as agents
from cockpit.agents.models import Visibility
from cockpit.agents.schemas import STARTERS_MAX, AgentCreate, parsed
from cockpit.authz.permissions import Permission
from cockpit.console.pages.agents import can_create, field_errors, form_fields, listed_integrations
from cockpit.console.web import SignedIn, Viewer, discard_changes, redirect, render
from cockpit.gateway import wizard
from cockpit.groups import service as groups
from cockpit.kit.errors import CockpitError, InvalidInput, NotPermitted
from cockpit.kit.web import DbSession
from cockpit.projects import service as projects
from cockpit.providers import service as providers

router = APIRouter(prefix="/agents/wizard")

# The preview keeps the latest turns of a long conversation (the gateway takes at most 50 messages).
PREVIEW_HISTORY = 48


async def _require_create(session: DbSession, viewer: Viewer) -> None:
    if not await can_create(session, viewer):
        raise NotPermitted("agents_create_not_allowed", "You cannot create agents.")


async def _chat_models(session: DbSession, viewer: Viewer) -> list[Any]:
    return [
        m
        for m in await providers.list_models(session, viewer.actor)
        if m.enabled and "chat" in (m.capabilities or ["chat"])
    ]


# ---- step 1: describe ----


async def _describe_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    values: dict[str, str],
    error: CockpitError | None = None,
) -> Response:
    admin = viewer.can(Permission.agents_manage)
    context = {
        "f": values,
        "error": error.message if error else None,
        "models": await _chat_models(session, viewer),
        "projects": [p for p, _ in await projects.list_projects(session, viewer.actor)],
        "admin": admin,
    }
    return render(request, "agents/wizard.html", context, status_code=error.status if error else 200)


@router.get("")
async def wizard_page(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    await _require_create(session, viewer)
    return await _describe_page(
        request, session, viewer, values={"description": "", "model": "", "project_id": ""}
    )


# ---- steps 2-4: the draft in the form, with the preview chat ----


async def _review_page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    *,
    values: dict[str, Any],
    brief: str,
    drafted_with: str,
    error: CockpitError | None = None,
) -> Response:
    """The agent form (every field of the manual form) prefilled, beside the preview chat."""
    actor = viewer.actor
    admin = viewer.can(Permission.agents_manage)
    context = {
        "agent": None,
        "f": values,
        "error": error.message if error else None,
        "errors": field_errors(error) if error else {},
        "can_edit": True,
        "admin": admin,
        "models": [m for m in await providers.list_models(session, actor) if m.enabled],
        "integrations": await agents.integration_choices(session, actor),
        "groups": await groups.groups_of(session, actor.account_id) if admin else [],
        "projects": [p for p, _ in await projects.list_projects(session, actor)],
        "visibilities": list(Visibility) if admin else [Visibility.project],
        "starters_max": STARTERS_MAX,
        "labels": None,
        "brief": brief,
        "drafted_with": drafted_with,
        "form_action": "/agents/wizard/publish",
        "submit_label": "Publish agent",
    }
    return render(request, "agents/wizard_review.html", context, status_code=422 if error else 200)


@router.post("")
async def draft_agent(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    description: Annotated[str, Form(max_length=4000)] = "",
    model: Annotated[str, Form(max_length=200)] = "",
    project_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    values = {"description": description, "model": model, "project_id": project_id}
    try:
        if len(description.strip()) < 10:
            raise InvalidInput(
                "description_too_short", "Describe the agent in a sentence or two (at least 10 characters)."
            )
        # The draft commits this request's session before calling the gateway (one writer on SQLite).
        found = await wizard.draft(request, session, viewer.actor, description.strip(), model or None)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _describe_page(request, session, viewer, values=values, error=exc)
    drafted: dict[str, Any] = {
        "name": found.name,
        "slug": found.slug,
        "description": found.description,
        "icon": found.icon,
        "instructions": found.instructions,
        "starters": found.starters,
        "model": found.model,  # a catalogue name: the form's model list selects it by name
        "integration_ids": found.integration_ids,
        "tools": found.tools,
        "max_steps": 5,
        "project_id": project_id or None,
    }
    if project_id or not viewer.can(Permission.agents_manage):
        drafted["visibility"] = Visibility.project.value
    return await _review_page(
        request, session, viewer, values=drafted, brief=description.strip(), drafted_with=found.model
    )


def _conversation(form: FormData) -> list[dict[str, str]]:
    """The preview's conversation so far, as the page keeps it (a JSON list in a hidden field)."""
    raw = form.get("conversation", "")
    try:
        items = json.loads(raw) if isinstance(raw, str) and raw.strip() else []
    except ValueError:
        items = []
    if not isinstance(items, list):
        return []
    return [
        {"role": str(m["role"]), "content": str(m["content"])}
        for m in items
        if isinstance(m, dict)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
    ]


async def _model_name(session: DbSession, viewer: Viewer, ref: str) -> str:
    """The form gives the model's id; the gateway routes by the catalogue name."""
    for m in await providers.list_models(session, viewer.actor):
        if ref in (str(m.id), m.name):
            return m.name
    return ref


def _preview_input(values: dict[str, Any], model: str, messages: list[dict[str, str]]) -> wizard.PreviewIn:
    body = {
        "model": model,
        "instructions": values["instructions"],
        "integration_ids": values["integration_ids"],
        "tools": values["tools"],
        "temperature": values["temperature"],
        "max_output_tokens": values["max_output_tokens"],
        "max_steps": values["max_steps"],
        "messages": messages,
    }
    if not model:
        raise InvalidInput("model_required", "Choose a model in the form before trying the agent.")
    return parsed(wizard.PreviewIn, body)


@router.post("/preview")
async def preview_agent(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    """One turn of the preview chat: the form as it is now plus the conversation so far; answers an
    htmx partial appended to the chat (the question, the answer and its tool steps)."""
    form = await request.form()
    raw_message = form.get("message", "")
    message = raw_message.strip() if isinstance(raw_message, str) else ""
    history = _conversation(form)
    context: dict[str, Any] = {"question": message, "conversation": history, "answer": None, "steps": []}
    try:
        if not message:
            raise InvalidInput("message_required", "Type a message to try the agent.")
        values = form_fields(form, await listed_integrations(session, viewer))
        model = await _model_name(session, viewer, values["model"])
        messages = [*history, {"role": "user", "content": message[:20_000]}][-PREVIEW_HISTORY - 1 :]
        body = _preview_input(values, model, messages)
        # The preview commits this request's session before calling the gateway (one writer on SQLite).
        completion = await wizard.preview(request, session, viewer.actor, body)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        context["error"] = exc.message
        # 200: htmx swaps the error into the chat (it leaves 4xx/5xx answers out).
        response = render(request, "agents/wizard_turn.html", context)
        response.headers["X-Preview-Failed"] = exc.code  # the page keeps the typed message
        return response
    choices = completion.get("choices") or [{}]
    answer = str((choices[0].get("message") or {}).get("content") or "")
    context.update(
        answer=answer,
        steps=list((completion.get("cockpit") or {}).get("steps") or []),
        conversation=[*messages, {"role": "assistant", "content": answer}],
    )
    return render(request, "agents/wizard_turn.html", context)


# ---- step 5: publish ----


@router.post("/publish")
async def publish_agent(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    form = await request.form()
    values = form_fields(form, await listed_integrations(session, viewer))
    brief = form.get("brief", "")
    drafted_with = form.get("drafted_with", "")
    try:
        agent = await agents.create_agent(session, viewer.actor, parsed(AgentCreate, values))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _review_page(
            request,
            session,
            viewer,
            values=values,
            brief=brief if isinstance(brief, str) else "",
            drafted_with=drafted_with if isinstance(drafted_with, str) else "",
            error=exc,
        )
    return redirect(request, f"/agents/{agent.id}", message=f"Agent “{agent.name}” published.")
