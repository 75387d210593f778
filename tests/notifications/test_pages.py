"""The console: the bell, the inbox, the templates' pages with their live preview, the mutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.models import LoginSession
from cockpit.config import Settings
from cockpit.events.catalog import EVENTS
from cockpit.users.models import UserRole
from tests.builders import console_login, csrf_for, make_account, make_user
from tests.notifications.conftest import emit_event, run_jobs

REQUEST = {"person_name": "Mia Member", "person_email": "mia@example.com", "amount": "500", "reason": "demo"}
EDIT = "/notifications/templates/credit_request.created/in_app"


async def test_the_bell_counts_lists_and_marks_read(
    app: Any, settings: Settings, db: AsyncSession, client: AsyncClient
) -> None:
    account, owner = await make_account(db)
    _, stranger = await make_account(db, name="Other")
    email = owner.email
    for amount in ("1", "2"):
        await emit_event(db, account.id, "credit_request.created", {**REQUEST, "amount": amount})
    await emit_event(db, stranger.account_id, "cycle.reset", {"starts_at": "a", "ends_at": "b"})
    await run_jobs(app, settings)
    await console_login(client, email)

    home = await client.get("/")
    assert 'hx-get="/notifications/bell"' in home.text
    assert 'hx-trigger="load, every 20s"' in home.text
    count = await client.get("/notifications/bell")
    assert 'data-testid="bell-count"' in count.text
    assert ">2<" in count.text
    listed = await client.get("/notifications/bell/list")
    assert listed.text.count('data-testid="bell-item"') == 2
    assert "Mia Member asks for 2 credits" in listed.text
    assert "new credit cycle" not in listed.text  # another account's

    csrf = await csrf_for(client, "/notifications/inbox")
    marked = await client.post(
        "/notifications/read",
        data={"all": "1", "from": "bell", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert marked.status_code == 200
    assert 'data-testid="bell-read-all"' not in marked.text
    assert 'data-testid="bell-count"' not in (await client.get("/notifications/bell")).text
    inbox = await client.get("/notifications/inbox")
    assert inbox.text.count('data-testid="inbox-item"') == 2


async def test_a_member_has_an_inbox_and_preferences_but_not_the_templates(
    db: AsyncSession, client: AsyncClient
) -> None:
    account, _ = await make_account(db)
    member = await make_user(db, account, role=UserRole.member)
    await console_login(client, member.email)
    assert (await client.get("/notifications")).status_code == 403
    assert (await client.get("/notifications/inbox")).status_code == 200
    page = await client.get("/notifications/preferences")
    assert page.status_code == 200
    assert 'data-testid="pref-budget.threshold_crossed"' in page.text
    # every event ticked but one: that one is muted; a mandatory one cannot be
    kept = [e for e in EVENTS if e != "credit_request.approved"]
    saved = await client.post(
        "/notifications/preferences",
        data={"events": kept, "csrf_token": await csrf_for(client, "/notifications/preferences")},
    )
    assert saved.status_code == 303
    page = await client.get("/notifications/preferences")
    assert 'value="credit_request.approved">' in page.text  # unticked
    assert 'value="budget.threshold_crossed" checked checked disabled' in page.text


async def test_the_template_editor_previews_saves_and_resets(db: AsyncSession, client: AsyncClient) -> None:
    _, owner = await make_account(db)
    await console_login(client, owner.email)
    index = await client.get("/notifications")
    assert index.status_code == 200
    assert 'href="/webhooks"' in index.text
    assert index.text.count('data-testid="template-row"') >= 17
    editor = await client.get(EDIT)
    assert editor.status_code == 200
    assert "{{ reason }}" in editor.text
    assert 'data-testid="variables"' in editor.text
    csrf = await csrf_for(client, EDIT)

    preview = await client.post(
        f"{EDIT}/preview",
        data={"subject": "Hello {{ person_name|upper }}", "body": "{{ nope }}", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert "Hello ADA LOVELACE" in preview.text
    assert "nope" in preview.text
    broken = await client.post(f"{EDIT}/preview", data={"subject": "{{ ''.__class__ }}", "csrf_token": csrf})
    assert 'data-testid="preview-error"' in broken.text

    form = {
        "subject": "Ask: {{ amount }}",
        "body": "b",
        "enabled": "on",
        "recipients": ["person"],
        "csrf_token": csrf,
    }
    saved = await client.post(EDIT, data=form)
    assert saved.status_code == 303
    page = await client.get(EDIT)
    assert "Ask: {{ amount }}" in page.text
    assert "Reset to default" in page.text
    bad = await client.post(EDIT, data={**form, "body": "{% for %}"})
    assert bad.status_code == 422
    assert "line 1" in bad.text

    reset = await client.post(f"{EDIT}/reset", data={"csrf_token": csrf})
    assert reset.status_code == 303
    assert "Reset to default" not in (await client.get(EDIT)).text
    toggled = await client.post(f"{EDIT}/toggle", data={"csrf_token": csrf})
    assert toggled.status_code == 303
    row = (await client.get("/notifications")).text
    assert "disabled" in row
    assert (await client.get("/notifications/templates/nope/in_app")).status_code == 404


async def test_the_bell_poll_does_not_keep_an_idle_session_alive(
    db: AsyncSession, client: AsyncClient
) -> None:
    _, owner = await make_account(db)
    owner_id = owner.id
    await console_login(client, owner.email)
    earlier = (
        await db.scalar(select(LoginSession.last_seen_at).where(LoginSession.user_id == owner_id))
    ) - timedelta(minutes=5)
    await db.execute(
        update(LoginSession).where(LoginSession.user_id == owner_id).values(last_seen_at=earlier)
    )
    await db.commit()
    assert (await client.get("/notifications/bell")).status_code == 200
    await db.rollback()
    seen = await db.scalar(select(LoginSession.last_seen_at).where(LoginSession.user_id == owner_id))
    assert seen == earlier
    await client.get("/notifications/inbox")  # a page someone opens does
    await db.rollback()
    assert (
        await db.scalar(select(LoginSession.last_seen_at).where(LoginSession.user_id == owner_id)) > earlier
    )
