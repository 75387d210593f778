"""No page shows a raw id: every console page, as the demo organisation's owner, is read as a person
reads it (the text, not the tags: ids in href/value/data attributes are fine) and holds no UUID.

The pages are found by following the console's own links from the dashboard, one page per route
shape (ids and queries set aside), so that a new page is checked without being listed here.
"""

from __future__ import annotations

import html
import re
from collections import deque
from urllib.parse import urljoin, urlsplit

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.demo import DEMO_EMAIL, DEMO_PASSWORD, DemoLogin
from cockpit.groups.models import Group
from cockpit.usage.models import UsageRecord
from tests.builders import bearer, console_login, csrf_for

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
HREF = re.compile(r'href="([^"#]+)"')
HIDDEN = re.compile(r"<(script|style|template)\b.*?</\1>", re.S | re.I)
TAG = re.compile(r"<[^>]+>")
# Not pages: files, sign-out, the API and the gateway.
SKIP = ("/static/", "/logout", "/api/", "/v1/", "/healthz", "/readyz")
MAX_PAGES = 80


def visible_text(page: str) -> str:
    return html.unescape(TAG.sub(" ", HIDDEN.sub(" ", page)))


def _shape(path: str) -> str:
    return UUID.sub(":id", urlsplit(path).path)


async def _crawl(client: AsyncClient, start: list[str]) -> dict[str, str]:
    """path -> the visible text of each page reached (one per route shape)."""
    seen_shapes: set[str] = set()
    pages: dict[str, str] = {}
    queue = deque(start)
    while queue and len(pages) < MAX_PAGES:
        path = queue.popleft()
        shape = _shape(path)
        if shape in seen_shapes or path.startswith(SKIP) or path.endswith((".csv", ".pdf", ".xlsx")):
            continue
        seen_shapes.add(shape)
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        if not response.headers["content-type"].startswith("text/html"):
            continue
        pages[path] = visible_text(response.text)
        for href in HREF.findall(response.text):
            target = urlsplit(urljoin(f"http://testserver{urlsplit(path).path}", html.unescape(href)))
            if target.netloc == "testserver":
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return pages


async def test_no_page_shows_a_raw_id(db: AsyncSession, client: AsyncClient, demo: DemoLogin) -> None:
    # A group that is gone by now: the audit log names its entries' target "deleted group".
    response = await console_login(client, DEMO_EMAIL, DEMO_PASSWORD)
    assert response.status_code == 303
    csrf = await csrf_for(client, "/groups")
    created = await client.post("/groups", data={"name": "Short-lived", "csrf_token": csrf})
    assert created.status_code in (303, 204), created.text
    group_id = await db.scalar(select(Group.id).where(Group.name == "Short-lived"))
    await db.commit()
    deleted = await client.post(f"/groups/{group_id}/delete", data={"csrf_token": csrf})
    assert deleted.status_code in (303, 204), deleted.text
    # A gateway call with the demo token, so a call made by a token is in the request log.
    assert demo.gateway_token is not None
    call = await client.post(
        "/v1/chat/completions",
        headers=bearer(demo.gateway_token),
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]},
    )
    assert call.status_code == 200, call.text

    request_id = await db.scalar(
        select(UsageRecord.id)
        .where(UsageRecord.api_token_id.is_not(None))
        .order_by(UsageRecord.created_at.desc())
    )
    deletion = await db.scalar(select(AuditEntry.id).where(AuditEntry.action == "group.deleted"))
    await db.commit()
    assert request_id is not None
    assert deletion is not None
    start = ["/", f"/requests/{request_id}", f"/audit/{deletion}", "/policies/effective", "/account"]
    pages = await _crawl(client, start)

    assert {"/", "/audit", "/requests", "/models", "/credits", "/policies/effective"} <= set(pages)
    offenders = {path: UUID.findall(text) for path, text in pages.items() if UUID.search(text)}
    assert offenders == {}
    # The deleted group is named by the label its entry recorded, not by its id.
    assert "Short-lived" in pages[f"/audit/{deletion}"]
