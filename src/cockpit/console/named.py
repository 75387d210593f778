"""What the pages of named objects (groups, projects) share: their name and description form fields,
and what a list page shows when its "New …" dialog was refused (templates: macros/named.html)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form

from cockpit.kit.errors import CockpitError

# Generous bounds on what is read of a form; the services check the real limits with clear messages.
NameForm = Annotated[str, Form(max_length=1000)]
DescriptionForm = Annotated[str, Form(max_length=5000)]


def typed(name: str, description: str, *, description_shown: int) -> dict[str, str]:
    """What was typed, cut to what the form shows back."""
    return {"name": name[:200], "description": description[:description_shown]}


def create_refused(
    exc: CockpitError, name: str, description: str, *, description_shown: int
) -> dict[str, Any]:
    """The list page's context when creating was refused: the dialog opens again with the message."""
    return {
        "status_code": exc.status,
        "create_error": exc.message,
        "create_form": typed(name, description, description_shown=description_shown),
    }
