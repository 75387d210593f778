"""Issue 17: the model catalogue for every signed-in person (``/models/catalogue``).

Registered before the Models page (whose ``/models/{id}`` routes are POSTs only): the models this
person may use with their prices; administrators also see the models denied to someone."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cockpit.console.web import SignedIn, render
from cockpit.kit.web import DbSession
from cockpit.policies.model_catalogue import model_catalogue
from cockpit.providers.models import Capability

router = APIRouter()


@router.get("/models/catalogue")
async def catalogue_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    q: Annotated[str, Query(max_length=200)] = "",
    capability: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    wanted = capability if capability in {c.value for c in Capability} else ""
    found = await model_catalogue(session, viewer.actor, search=q, capability=wanted)
    return render(
        request,
        "catalogue/index.html",
        {
            "catalogue": found,
            "q": q,
            "capability": wanted,
            "capabilities": [c.value for c in Capability],
            "filtered": bool(q.strip() or wanted),
        },
    )
