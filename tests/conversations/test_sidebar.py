"""The sidebar's sections: pinned first, then by the day of the last activity in the account's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cockpit.console.pages.conversations import grouped_by_date
from cockpit.conversations.models import Conversation


def _conversation(title: str, updated: datetime, *, pinned: bool = False) -> Conversation:
    return Conversation(title=title, updated_at=updated, pinned=pinned)


def test_sections_by_day_in_the_accounts_time_zone() -> None:
    now = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)  # already 7 December in Tokyo
    tokyo = ZoneInfo("Asia/Tokyo")
    rows = [
        _conversation("pinned long ago", now - timedelta(days=400), pinned=True),
        _conversation("now", now),
        _conversation("an hour ago", now - timedelta(hours=1)),  # 7 Dec 07:30 in Tokyo: today
        _conversation("this time yesterday", now - timedelta(days=1)),
        _conversation("five days", now - timedelta(days=5)),
        _conversation("twenty days", now - timedelta(days=20)),
        _conversation("in August", datetime(2026, 8, 3, 12, tzinfo=UTC)),
    ]
    sections = grouped_by_date(rows, tokyo, now)
    assert [(label, [c.title for c in items]) for label, items in sections] == [
        ("Pinned", ["pinned long ago"]),
        ("Today", ["now", "an hour ago"]),
        ("Yesterday", ["this time yesterday"]),
        ("Previous 7 days", ["five days"]),
        ("Previous 30 days", ["twenty days"]),
        ("August 2026", ["in August"]),
    ]
    # In UTC the hour-old conversation is still today, and so is "now".
    utc = dict(grouped_by_date(rows[1:3], UTC, now))
    assert [c.title for c in utc["Today"]] == ["now", "an hour ago"]
    assert grouped_by_date([], tokyo, now) == []
