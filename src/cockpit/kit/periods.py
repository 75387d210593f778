"""A period given as ``since``/``until`` query parameters: each with a time zone, ``since`` first."""

from __future__ import annotations

from datetime import datetime

from cockpit.kit.errors import InvalidInput


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Raise InvalidInput (422) for a time without a zone or a period that ends before it starts."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(
                "invalid_input",
                f"'{name}' needs a time zone, e.g. 2026-11-01T00:00:00Z.",
                details=[{"field": name, "message": "time zone required"}],
            )
    if since and until and since >= until:
        raise InvalidInput(
            "invalid_input",
            "'since' must be before 'until'.",
            details=[{"field": "since", "message": "must be before until"}],
        )
