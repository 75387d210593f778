"""The conversations workspace in the console, driven like a browser: the sidebar and the new
conversation form, a conversation with the simulated model (its text escaped, never HTML), regenerate
and the branch switch, rename/pin/archive/delete, and another person's conversation (404)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import service
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.builders import console_login, csrf_for
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.agent_tools import ToolServer, setup_agent
from tests.gateway.conftest import Org, fund

# The gateway's fixtures: an app and an account with a simulated chat model ("sim-chat").
upstream = gateway_fixtures.upstream
anthropic_upstream = gateway_fixtures.anthropic_upstream
gateway_settings = gateway_fixtures.gateway_settings
gateway_app = gateway_fixtures.gateway_app
org = gateway_fixtures.org
tool_server = gateway_fixtures.tool_server

HOSTILE = "Why is <script>alert(1)</script> here?"
HTMX = {"HX-Request": "true"}


async def _client(app: Any) -> AsyncClient:
    transport = ASGITransport(app=app, client=("203.0.113.7", 50000))
    return AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def console(gateway_app: Any) -> AsyncIterator[AsyncClient]:
    async with await _client(gateway_app) as http:
        yield http


async def _post(client: AsyncClient, url: str, data: dict[str, str], **headers: str) -> Response:
    fields = {"csrf_token": await csrf_for(client, "/conversations"), **data}
    return await client.post(url, data=fields, headers=headers)


async def _start(client: AsyncClient, **data: str) -> str:
    started = await _post(client, "/conversations", {"with": "model:sim-chat", **data})
    assert started.status_code == 303, started.text
    url = started.headers["location"]
    assert re.fullmatch(r"/conversations/[0-9a-f-]{36}", url)
    return url


def _id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rsplit("/", 1)[1])


def _switch(page: str) -> list[str]:
    return re.findall(r'class="conv-switch-pos">([^<]*)<', page)


async def test_the_workspace_shows_the_sidebar_and_the_new_conversation_form(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await console_login(console, org.member.email)
    page = await console.get("/conversations")
    assert page.status_code == 200
    assert re.search(r'<a[^>]*href="/conversations"[^>]*aria-current="page"', page.text)  # the nav item
    assert "No conversations yet." in page.text
    assert 'action="/conversations"' in page.text
    assert '<option value="model:sim-chat"' in page.text
    assert re.search(r'<option value="model:[^"]+" selected>', page.text)  # no agent: a model is chosen
    assert "embed-small" not in page.text  # not a chat model

    url = await _start(console, title="Plants")
    listed = await console.get("/conversations")
    assert f'href="{url}"' in listed.text
    assert "Plants" in listed.text
    assert "No conversations yet." not in listed.text
    assert f'href="{url}"' not in (await console.get("/conversations?q=nothing-like-it")).text
    assert f'href="{url}?q=plan"' in (await console.get("/conversations?q=plan")).text

    refused = await _post(console, "/conversations", {"with": "model:no-such-model"})
    assert refused.status_code == 422
    assert "no-such-model" in refused.text


async def test_a_message_gets_the_answer_shown_as_escaped_text(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    await console_login(console, org.member.email)
    url = await _start(console)
    empty = await console.get(url)
    assert "No messages yet" in empty.text

    # htmx: the thread comes back as a partial.
    sent = await _post(console, f"{url}/messages", {"content": HOSTILE}, **HTMX)
    assert sent.status_code == 200, sent.text
    assert sent.text.lstrip().startswith("<div") or 'id="thread"' in sent.text
    assert "<html" not in sent.text
    assert "Why is &lt;script&gt;alert(1)&lt;/script&gt; here?" in sent.text
    assert "<script>alert(1)</script>" not in sent.text
    assert sent.text.count('data-testid="message-assistant"') == 1
    assert "thread-error" not in sent.text

    # A plain form post: back to the conversation, which shows both exchanges.
    again = await _post(console, f"{url}/messages", {"content": "And how do plants grow?"})
    assert (again.status_code, again.headers["location"]) == (303, url)
    page = await console.get(url)
    assert page.text.count('data-testid="message-user"') == 2
    assert page.text.count('data-testid="message-assistant"') == 2
    assert "<script>alert(1)</script>" not in page.text

    # An answer with HTML in it (as a model or a tool could write) is text, never markup; its Markdown
    # is rendered (tests/console/test_markdown.py has the rest).
    actor = Actor.for_user(org.member)
    views = await service.messages(db, actor, _id(url))
    await service.add_assistant_message(
        db, actor, _id(url), parent_id=views[-2].message.id,
        content='<img src=x onerror="alert(2)">\nsecond **line** [go](javascript:alert(3))',
    )  # fmt: skip
    await db.commit()
    shown = await console.get(url)
    assert '<img src=x onerror="alert(2)">' not in shown.text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;\nsecond <strong>line</strong>" in shown.text
    assert "javascript:alert(3)" in shown.text
    assert 'href="javascript' not in shown.text


async def test_regenerate_makes_a_sibling_and_the_switch_changes_branch(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    await console_login(console, org.member.email)
    url = await _start(console)
    first = await _post(console, f"{url}/messages", {"content": "How do plants grow?"}, **HTMX)
    assert _switch(first.text) == []
    assert "Regenerate" in first.text
    [answer_id] = re.findall(r'/regenerate".*?name="message_id" value="([^"]+)"', first.text, re.S)

    regenerated = await _post(console, f"{url}/regenerate", {"message_id": answer_id}, **HTMX)
    assert regenerated.status_code == 200, regenerated.text
    assert _switch(regenerated.text) == ["2 / 2"]
    assert regenerated.text.count('data-testid="message-assistant"') == 1
    # The switch's "previous" form points at the first answer.
    assert re.search(
        rf'name="message_id" value="{answer_id}">\s*<button[^>]*aria-label="Previous version"',
        regenerated.text,
    )

    switched = await _post(console, f"{url}/branch", {"message_id": answer_id}, **HTMX)
    assert switched.status_code == 200
    assert _switch(switched.text) == ["1 / 2"]
    # The conversation reopens on the branch last viewed.
    assert _switch((await console.get(url)).text) == ["1 / 2"]

    plain = await _post(console, f"{url}/branch", {"message_id": answer_id})
    assert (plain.status_code, plain.headers["location"]) == (303, url)


async def test_edit_an_earlier_message_and_resend(console: AsyncClient, db: AsyncSession, org: Org) -> None:
    await fund(db, org)
    await console_login(console, org.member.email)
    url = await _start(console, title="Edits")
    await _post(console, f"{url}/messages", {"content": "How do plants grow?"}, **HTMX)
    second = await _post(console, f"{url}/messages", {"content": "And trees?"}, **HTMX)
    [first_id, _second_id] = re.findall(r'name="edit_of" value="([^"]+)"', second.text)
    edited = await _post(
        console, f"{url}/messages", {"content": "How do ferns grow?", "edit_of": first_id}, **HTMX
    )
    assert edited.status_code == 200, edited.text
    # The new version replaces the branch from that message on; the old one is a switch away.
    assert edited.text.count('data-testid="message-user"') == 1
    assert "How do ferns grow?" in edited.text
    assert "And trees?" not in edited.text
    assert _switch(edited.text) == ["2 / 2"]
    bad = await _post(console, f"{url}/messages", {"content": "x", "edit_of": "not-an-id"}, **HTMX)
    assert 'data-testid="thread-error"' in bad.text
    stranger = await _post(console, f"{url}/messages", {"content": "x", "edit_of": str(uuid.uuid4())}, **HTMX)
    assert 'data-testid="thread-error"' in stranger.text


async def test_a_tool_that_asks_first_waits_for_the_persons_approval(
    console: AsyncClient, db: AsyncSession, org: Org, tool_server: ToolServer
) -> None:
    await fund(db, org)
    agent, integration = await setup_agent(db, org, tool_server)
    agent.tools = {str(integration.id): {"all": True, "confirm": ["lookup_order"]}}
    await db.commit()
    await console_login(console, org.member.email)
    url = await _start(console, **{"with": "agent:support", "title": "Orders"})
    paused = await _post(console, f"{url}/messages", {"content": "Where is my order 42?"}, **HTMX)
    assert 'data-testid="approval"' in paused.text
    assert "lookup_order" in paused.text
    assert "Order 42 shipped" not in paused.text
    [answer_id] = re.findall(
        r'name="message_id" value="([^"]+)">\s*<input type="hidden" name="decision" value="approve"',
        paused.text,
    )
    bad = await _post(console, f"{url}/approve", {"message_id": answer_id, "decision": "maybe"}, **HTMX)
    assert 'data-testid="thread-error"' in bad.text
    approved = await _post(
        console, f"{url}/approve", {"message_id": answer_id, "decision": "approve"}, **HTMX
    )
    assert approved.status_code == 200, approved.text
    assert 'data-testid="approval"' not in approved.text
    assert "Order 42 shipped" in approved.text
    again = await _post(console, f"{url}/approve", {"message_id": answer_id, "decision": "approve"}, **HTMX)
    assert "decided already" in again.text or "not waiting" in again.text


async def test_the_default_agent_is_preselected_and_its_tool_steps_are_collapsed_cards(
    console: AsyncClient, db: AsyncSession, org: Org, tool_server: ToolServer
) -> None:
    await fund(db, org)
    await setup_agent(db, org, tool_server, is_default=True)
    await console_login(console, org.member.email)
    page = await console.get("/conversations")
    assert '<option value="agent:support" selected>Support (default)</option>' in page.text
    url = await _start(console, **{"with": "agent:support"})
    assert "with Support" in (await console.get(url)).text
    sent = await _post(console, f"{url}/messages", {"content": "Where is my order 42?"}, **HTMX)
    assert sent.status_code == 200, sent.text
    assert "Order 42 shipped" in sent.text
    step = re.search(r'<details class="chat-step"[^>]*>\s*<summary>(.*?)</summary>', sent.text, re.S)
    assert step is not None  # collapsed: no "open"
    assert "Order desk" in step.group(1)
    assert "lookup_order" in step.group(1)


async def test_a_refused_answer_is_kept_and_shown_with_its_reason(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await fund(db, org)
    await console_login(console, org.member.email)
    url = await _start(console)
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.model, resource="*", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    sent = await _post(console, f"{url}/messages", {"content": "Hello there?"}, **HTMX)
    assert sent.status_code == 200
    assert 'data-testid="thread-error"' in sent.text
    assert 'data-testid="answer-failed"' in sent.text
    assert "Hello there?" in sent.text  # the question is kept
    plain = await _post(console, f"{url}/messages", {"content": "Still there?"})
    assert (plain.status_code, plain.headers["location"]) == (303, url)
    page = await console.get(url)
    assert page.text.count('data-testid="answer-failed"') == 2
    assert "banner-error" in page.text  # the flash banner of the failure


async def test_a_call_refused_for_credits_offers_to_request_credits(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await fund(db, org, members={org.member.id: "0", org.admin.id: "10000"})
    await console_login(console, org.member.email)
    url = await _start(console, title="Budget <talk>")
    sent = await _post(console, f"{url}/messages", {"content": "Hello there?"}, **HTMX)
    assert sent.status_code == 200
    assert 'data-testid="credits-refusal"' in sent.text
    assert "Nothing was charged" in sent.text
    link = re.search(r'data-testid="request-credits" href="([^"]+)"', sent.text)
    assert link is not None
    target = link.group(1).replace("&amp;", "&")
    assert target.startswith("/credits/requests?new=1&reason=")
    form = await console.get(target)
    assert form.status_code == 200
    # The request form opens prefilled with the conversation's reason (escaped).
    assert "To go on with the conversation “Budget &lt;talk&gt;”." in form.text
    # A policy that denies credit requests: the refusal stays, the button goes.
    db.add(AccessPolicy(
        account_id=org.account_id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.feature, resource="credit_requests.create", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    page = await console.get(url)
    assert 'data-testid="credits-refusal"' in page.text
    assert 'data-testid="request-credits"' not in page.text


async def test_rename_pin_archive_and_delete(console: AsyncClient, db: AsyncSession, org: Org) -> None:
    await console_login(console, org.member.email)
    older = await _start(console, title="Older one")
    url = await _start(console, title="First title")

    renamed = await _post(console, f"{url}/rename", {"title": "Garden plans"})
    assert renamed.status_code == 303
    page = await console.get(url)
    assert "Garden plans" in page.text
    assert "Conversation renamed." in page.text

    # Pinned first, even though the other one is older.
    await _post(console, f"{older}/pin", {"pinned": "1"})
    listed = (await console.get("/conversations")).text
    assert listed.index(f'href="{older}"') < listed.index(f'href="{url}"')
    assert ">Unpin<" in (await console.get(older)).text
    await _post(console, f"{older}/pin", {"pinned": "0"})
    listed = (await console.get("/conversations")).text
    assert listed.index(f'href="{url}"') < listed.index(f'href="{older}"')

    archived = await _post(console, f"{url}/archive", {"archived": "1"})
    assert archived.status_code == 303
    assert f'href="{url}"' not in (await console.get("/conversations")).text
    assert f'href="{url}?archived=1"' in (await console.get("/conversations?archived=1")).text
    await _post(console, f"{url}/archive", {"archived": "0"})
    assert f'href="{url}"' in (await console.get("/conversations")).text

    page = await console.get(url)
    assert 'data-confirm="It moves to Deleted, where you can restore it for 30 days' in page.text
    deleted = await _post(console, f"{url}/delete", {})
    assert (deleted.status_code, deleted.headers["location"]) == (303, "/conversations")
    assert (await console.get(url)).status_code == 404
    assert f'href="{url}"' not in (await console.get("/conversations")).text
    # Soft: it can still be restored (through the API for now).
    restored = await service.restore_conversation(db, Actor.for_user(org.member), _id(url))
    assert restored.title == "Garden plans"


async def test_another_persons_conversation_is_not_found(
    console: AsyncClient, db: AsyncSession, org: Org, gateway_app: Any
) -> None:
    await console_login(console, org.member.email)
    url = await _start(console, title="Private matters")
    async with await _client(gateway_app) as other:
        await console_login(other, org.admin.email)
        assert (await other.get(url)).status_code == 404
        assert "Private matters" not in (await other.get("/conversations")).text
        for action, data in (
            ("messages", {"content": "hello?"}),
            ("rename", {"title": "Mine now"}),
            ("pin", {}),
            ("archive", {}),
            ("delete", {}),
        ):
            response = await _post(other, f"{url}/{action}", data)
            assert response.status_code == 404, action
    assert "Private matters" in (await console.get(url)).text


async def test_an_answer_streams_into_the_page_and_the_thread_is_re_read(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await console_login(console, org.admin.email)
    url = await _start(console)
    page = (await console.get(url)).text
    assert f'data-stream="{url}/stream"' in page
    assert "js/conversations.js" in page
    fields = {"csrf_token": await csrf_for(console, url), "content": "Tell me about <b>tea</b>?"}
    streamed = await console.post(f"{url}/stream", data=fields)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert '"type":"delta"' in events[0]
    assert '"type":"message"' in events[-2]
    assert '"type":"title"' in events[-1]  # the first exchange names the conversation
    thread = await console.get(f"{url}/thread")
    assert thread.status_code == 200
    assert "<html" not in thread.text
    assert "Tell me about &lt;b&gt;tea&lt;/b&gt;?" in thread.text
    assert thread.text.count('data-testid="message-assistant"') == 1
    empty = await console.post(f"{url}/stream", data={"csrf_token": fields["csrf_token"], "content": " "})
    assert empty.status_code == 422
    other = await console.get(f"/conversations/{uuid.uuid4()}/thread")
    assert other.status_code == 404


async def test_the_sidebar_searches_titles_and_messages(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    actor = Actor.for_user(org.member)
    mine = await service.start_conversation(db, actor, model="sim-chat", title="Garden <notes>")
    asked = await service.add_user_message(db, actor, mine.id, content="How does photosynthesis work?")
    answer = await service.add_assistant_message(
        db, actor, mine.id, parent_id=asked.id, content="Photosynthesis turns <b>light</b> into sugar."
    )
    theirs = await service.start_conversation(db, Actor.for_user(org.admin), model="sim-chat", title="x")
    await service.add_user_message(db, Actor.for_user(org.admin), theirs.id, content="photosynthesis too")
    await db.commit()
    await console_login(console, org.member.email)
    found = await console.get("/conversations", params={"q": "photosynthesis"})
    assert found.status_code == 200
    assert found.text.count('data-testid="search-hit"') == 1  # the other person's is never found
    assert "Garden &lt;notes&gt;" in found.text
    assert "<mark>" in found.text
    assert "&lt;b&gt;light&lt;/b&gt;" in found.text or "How does" in found.text
    assert "<b>light</b>" not in found.text
    assert f"#m-{asked.id}" in found.text or f"#m-{answer.id}" in found.text
    none = await console.get("/conversations", params={"q": "zebra"})
    assert 'data-testid="search-empty"' in none.text
    # FTS syntax, NUL, and (percent-encoded, as a browser could send them) a lone surrogate and a
    # byte that is not UTF-8: a clear answer, never a 500.
    for raw in ("%22", "*", "NEAR(", "a%00b", "%ED%A0%80", "%FF"):
        response = await console.get(f"/conversations?q={raw}")
        assert response.status_code in (200, 400, 422), (raw, response.status_code)


async def test_a_deleted_conversation_is_restored_from_deleted(
    console: AsyncClient, db: AsyncSession, org: Org
) -> None:
    await console_login(console, org.member.email)
    url = await _start(console, title="Oops <gone>")
    empty = await console.get("/conversations/deleted")
    assert "Nothing deleted" in empty.text
    deleted = await _post(console, f"{url}/delete", {})
    assert deleted.status_code == 303
    assert (await console.get(url)).status_code == 404
    page = await console.get("/conversations/deleted")
    assert "Oops &lt;gone&gt;" in page.text
    assert "30 days left" in page.text
    restored = await _post(console, f"{url}/restore", {})
    assert (restored.status_code, restored.headers["location"]) == (303, url)
    assert (await console.get(url)).status_code == 200
    # Someone else's conversation cannot be restored (nor seen).
    other = await service.start_conversation(db, Actor.for_user(org.admin), model="sim-chat", title="theirs")
    await service.delete_conversation(db, Actor.for_user(org.admin), other.id)
    await db.commit()
    assert "theirs" not in (await console.get("/conversations/deleted")).text
    assert (await _post(console, f"/conversations/{other.id}/restore", {})).status_code == 404
