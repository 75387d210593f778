from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp in Cockpit is)."""
    return datetime.now(UTC)
