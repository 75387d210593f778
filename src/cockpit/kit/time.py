from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp in Cockpit is)."""
    return datetime.now(UTC)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day_text(moment: datetime, timezone: str | None = None) -> str:
    """The day of ``moment`` in a time zone (an account's; UTC if unknown), as platform events carry
    it: "13 Dec 2026"."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(zone)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year}"
