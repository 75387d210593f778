"""Every main page fits the screen at 1440 px and at 390 px (a phone): nothing pushes the page
sideways, tables scroll inside their card, and every button in a table can be reached there."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.demo import DEMO_EMAIL, DEMO_PASSWORD, DemoLogin
from cockpit.projects.models import Project
from cockpit.users.models import User, UserRole, UserStatus
from tests.e2e.test_console import sign_in

PAGES = [
    "/",
    "/users",
    "/invitations",
    "/groups",
    "/projects",
    "/agents",
    "/agents/new",
    "/agents/wizard",
    "/integrations",
    "/conversations",
    "/credits",
    "/credits/allocations",
    "/credits/requests",
    "/credits/statement",
    "/credits/settings",
    "/cost-tracking",
    "/policies",
    "/policies/effective",
    "/models",
    "/requests",
    "/audit",
    "/tokens",
    "/users/import",
    "/account",
]

# What a member sees (the rest is for administrators).
MEMBER_PAGES = [
    "/",
    "/credits",
    "/credits/statement",
    "/credits/requests",
    "/policies/effective",
    "/agents",
    "/integrations",
    "/conversations",
    "/requests",
    "/tokens",
    "/account",
]

# What overflows: the page itself, and any table button outside its scroll box (or with none).
MEASURE = """() => {
  const doc = document.documentElement;
  const problems = [];
  if (doc.scrollWidth > window.innerWidth) problems.push(`page ${doc.scrollWidth} > ${window.innerWidth}`);
  for (const el of document.querySelectorAll('table button, table a.btn')) {
    if (!el.offsetParent) continue;  // hidden until its row is chosen
    const box = el.closest('.table-wrap');
    const label = (el.textContent || '').trim() || el.getAttribute('aria-label') || el.tagName;
    if (!box) { problems.push(`"${label}" in a table with no scroll box`); continue; }
    const b = box.getBoundingClientRect(), r = el.getBoundingClientRect();
    if (b.right > window.innerWidth + 1) problems.push(`scroll box of "${label}" ends at ${b.right}`);
    const right = r.right - b.left + box.scrollLeft;
    if (right > box.scrollWidth + 1) problems.push(`"${label}" beyond its scroll box: ${right}`);
  }
  return problems;
}"""


@pytest.mark.parametrize("role", ["owner", "member"])
@pytest.mark.parametrize("width", [1440, 390])
async def test_main_pages_fit_and_table_actions_are_reachable(
    page: Page, live_server: str, db: AsyncSession, demo: DemoLogin, width: int, role: str
) -> None:
    email, pages = DEMO_EMAIL, PAGES
    if role == "member":  # every demo person has the demo password
        member = await db.scalar(
            select(User)
            .where(User.role == UserRole.member, User.status == UserStatus.active)
            .order_by(User.email)
        )
        assert member is not None
        email, pages = member.email, MEMBER_PAGES
        await db.commit()
    else:  # and a project's analytics
        project = await db.scalar(select(Project.id).order_by(Project.name).limit(1))
        assert project is not None
        pages = [*PAGES, f"/projects/{project}/analytics"]
        await db.commit()
    await page.set_viewport_size({"width": width, "height": 900})
    await sign_in(page, live_server, email, DEMO_PASSWORD)
    await page.wait_for_url(f"{live_server}/")
    problems: dict[str, Any] = {}
    for path in pages:
        response = await page.goto(f"{live_server}{path}")
        assert response is not None, path
        assert response.status == 200, path
        found = await page.evaluate(MEASURE)
        if found:
            problems[path] = found
    assert problems == {}


async def test_api_docs_render_from_local_assets(page: Page, live_server: str) -> None:
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_server) else None)
    await page.goto(f"{live_server}/api/docs")
    await page.locator(".swagger-ui .info .title").wait_for()
    assert "Cockpit API" in await page.locator(".swagger-ui .info .title").inner_text()
    assert outside == []
