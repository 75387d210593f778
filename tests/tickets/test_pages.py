"""The Support pages: a member's own tickets (filing, thread, reply, close) and the administrators'
queue and ticket page (filters, internal notes, controls, merge, context), escaping throughout."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.credits.models import MemberAllocation
from cockpit.kit.time import utcnow
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.usage.models import UsageRecord
from tests.builders import console_login, csrf_for
from tests.tickets.helpers import API, events_named, filed, org

HOSTILE = "<script>alert('x')</script>"


def _ticket_url(response_location: str) -> str:
    assert re.fullmatch(r"/support/[0-9a-f-]{36}", response_location), response_location
    return response_location


async def test_a_member_files_a_ticket_reads_the_reply_and_closes_it(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    await console_login(client, o.member.email)
    page = await client.get("/support")
    assert page.status_code == 200
    assert "New ticket" in page.text
    assert "You have no tickets" in page.text
    token = await csrf_for(client, "/support")
    # No CSRF token: refused.
    refused = await client.post("/support", data={"subject": "x", "description": "y"})
    assert refused.status_code == 403
    sent = await client.post(
        "/support",
        data={"subject": HOSTILE, "description": f"Body {HOSTILE}", "category": "access",
              "priority": "high", "csrf_token": token},
    )  # fmt: skip
    assert sent.status_code == 303
    url = _ticket_url(sent.headers["location"])
    ticket = await client.get(url)
    assert "Ticket #1 was filed." in ticket.text
    assert HOSTILE not in ticket.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in ticket.text
    assert 'id="ticket-controls"' not in ticket.text
    assert 'id="ticket-context"' not in ticket.text
    listing = await client.get("/support")
    assert HOSTILE not in listing.text
    assert 'id="tickets-table"' in listing.text
    # The admin replies (API) and adds a note; the member sees the reply, not the note.
    tid = url.rsplit("/", 1)[1]
    await client.post(
        f"{API}/tickets/{tid}/comments", json={"body": f"Reply {HOSTILE}"}, headers=o.admin_headers
    )
    await client.post(
        f"{API}/tickets/{tid}/comments",
        json={"body": "SECRET NOTE", "internal": True},
        headers=o.admin_headers,
    )
    ticket = await client.get(url)
    assert "Reply &lt;script&gt;" in ticket.text
    assert "SECRET NOTE" not in ticket.text
    reply = await client.post(
        f"{url}/comments", data={"body": "Thanks!", "csrf_token": await csrf_for(client, url)}
    )
    assert reply.status_code == 303
    assert "Thanks!" in (await client.get(url)).text
    # An empty reply is refused with a message on the page.
    empty = await client.post(
        f"{url}/comments", data={"body": "  ", "csrf_token": await csrf_for(client, url)}
    )
    assert empty.status_code == 422
    assert "The reply is required." in empty.text
    closed = await client.post(f"{url}/close", data={"csrf_token": await csrf_for(client, url)})
    assert closed.status_code == 303
    after = await client.get(url)
    assert "Ticket closed." in after.text
    assert 'id="closed-note"' in after.text
    assert [e.data["status"] for e in await events_named(db, o.account.id, "ticket.status_changed")] == [
        "closed"
    ]


async def test_a_member_without_the_feature_sees_no_new_ticket_button(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    db.add(AccessPolicy(
        account_id=o.account.id, scope=Scope.user, scope_id=o.member.id, resource_type=ResourceType.feature,
        resource="support_tickets.create", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    await console_login(client, o.member.email)
    page = await client.get("/support")
    assert 'id="new-ticket"' not in page.text
    assert "do not let you file support tickets" in page.text
    token = await csrf_for(client, "/support")
    refused = await client.post("/support", data={"subject": "s", "description": "d", "csrf_token": token})
    assert refused.status_code == 403


async def test_members_cannot_open_anyone_elses_ticket(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    theirs = await filed(client, o.other_headers, "Theirs")
    await console_login(client, o.member.email)
    assert (await client.get(f"/support/{theirs['id']}")).status_code == 404
    assert (await client.get("/support/not-a-uuid")).status_code == 404
    token = await csrf_for(client, "/support")
    refused = await client.post(f"/support/{theirs['id']}/comments", data={"body": "hi", "csrf_token": token})
    assert refused.status_code == 404
    assert "Theirs" not in (await client.get("/support")).text


async def test_the_admin_queue_filters_counts_and_handles_a_ticket(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    first = await filed(client, o.member_headers, f"Login {HOSTILE}", category="access", priority="urgent")
    await filed(client, o.other_headers, "Invoice wrong", category="billing")
    await console_login(client, o.admin.email)
    queue = await client.get("/support")
    assert queue.status_code == 200
    assert HOSTILE not in queue.text
    assert "Login &lt;script&gt;" in queue.text
    assert re.search(r'data-testid="count-new">New <span class="num">2</span>', queue.text)
    htmx = {"HX-Request": "true", "HX-Target": "support-results"}
    partial = await client.get("/support", params={"category": "billing"}, headers=htmx)
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "Invoice wrong" in partial.text
    assert "Login" not in partial.text
    assert "Invoice wrong" not in (await client.get("/support", params={"priority": "urgent"})).text
    unknown = await client.get("/support", params={"status": "bogus"})
    assert "Unknown status" in unknown.text
    url = f"/support/{first['id']}"
    page = await client.get(url)
    assert 'id="ticket-controls"' in page.text
    assert 'id="ticket-context"' in page.text
    assert 'id="merge-form"' in page.text
    token = await csrf_for(client, url)
    note = await client.post(
        f"{url}/comments", data={"body": "Check the policy", "internal": "1", "csrf_token": token}
    )
    assert note.status_code == 303
    page = await client.get(url)
    assert 'data-testid="internal-note"' in page.text
    assert "Internal note added." in page.text
    changed = await client.post(
        f"{url}/update",
        data={"status": "resolved", "priority": "high", "category": "access", "assignee": str(o.admin.id),
              "csrf_token": await csrf_for(client, url)},
    )  # fmt: skip
    assert changed.status_code == 303
    detail = (await client.get(f"{API}/tickets/{first['id']}", headers=o.admin_headers)).json()
    assert (detail["status"], detail["priority"], detail["assignee"]["email"]) == (
        "resolved",
        "high",
        o.admin.email,
    )
    wrong = await client.post(
        f"{url}/update", data={"assignee": str(o.member.id), "csrf_token": await csrf_for(client, url)}
    )
    assert wrong.status_code == 422
    assert "active administrator" in wrong.text
    mine = await client.get("/support", params={"assignee": "me"})
    assert "Login &lt;script&gt;" in mine.text
    assert "Invoice wrong" not in mine.text


async def test_the_admin_merges_a_duplicate_from_the_ticket_page(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    a = await filed(client, o.member_headers, "Duplicate")
    b = await filed(client, o.other_headers, "Original")
    await console_login(client, o.owner.email)
    url = f"/support/{a['id']}"
    merged = await client.post(
        f"{url}/merge", data={"into": b["id"], "csrf_token": await csrf_for(client, url)}
    )
    assert merged.status_code == 303
    page = await client.get(url)
    assert "merged into ticket #2 and closed" in page.text
    assert 'id="merged-banner"' in page.text
    target = await client.get(f"/support/{b['id']}")
    assert "Merged from ticket #1" in target.text


async def test_the_context_panel_shows_group_credits_left_and_recent_errors(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await org(db)
    o.account.credit_factor = Decimal(1)
    db.add(MemberAllocation(user_id=o.member.id, account_id=o.account.id, monthly=Decimal(1500),
                            extra=Decimal(0), signup_shortfall=Decimal(0)))  # fmt: skip
    for minutes, status in ((1, "error"), (2, "success"), (3, "error")):
        db.add(UsageRecord(
            id=uuid.uuid4(), account_id=o.account.id, created_at=utcnow() - timedelta(minutes=minutes),
            user_id=o.member.id, model=f"model-{minutes}", provider_kind="openai", operation="chat",
            status=status, error_type="upstream_error" if status == "error" else None,
            error_message=f"Upstream said <b>no</b> {minutes}" if status == "error" else None,
            http_status=502 if status == "error" else 200, latency_ms=10, input_tokens=0, output_tokens=0,
            cached_tokens=0, tokens_estimated=False, cost_usd=Decimal(0),
        ))  # fmt: skip
    await db.commit()
    t = await filed(client, o.member_headers, "Calls fail")
    await console_login(client, o.admin.email)
    page = await client.get(f"/support/{t['id']}")
    assert page.status_code == 200
    panel = page.text.split('id="ticket-context"', 1)[1].split("</section>", 1)[0]
    assert "Default" in panel  # the requester's group
    assert "1,500" in panel
    assert "model-1" in panel
    assert "model-3" in panel
    assert "model-2" not in panel
    assert "Upstream said &lt;b&gt;no&lt;/b&gt; 1" in panel
