"""Branching a conversation into a new thread (a copy of one branch) and exporting a conversation
as Markdown or JSON: what is copied, what is left, hostile content, and a 2,000-message branch."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import history, service
from cockpit.conversations.models import ConversationMessage, MessageStatus, Role
from cockpit.kit.time import utcnow
from tests.conversations.conftest import CONVERSATIONS, Org, error_of, make_org

STEP = {
    "integration": "CRM <b>",
    "tool": "find",
    "arguments": {"q": "```evil```"},
    "result": "</details><script>alert(2)</script>",
    "ok": True,
    "duration_ms": 12,
}


async def _tree(db: AsyncSession, org: Org) -> dict[str, Any]:
    """q1 → a1 → q2 → a2 (and q2b, an edited q2 beside it), with an agent, tool steps and costs."""
    me = Actor.for_user(org.member)
    conversation = await service.start_conversation(db, me, agent="helper", title="Plans")
    cid = conversation.id
    q1 = await service.add_user_message(db, me, cid, content="First question")
    a1 = await service.add_assistant_message(
        db, me, cid, parent_id=q1.id, content="First <script>alert(1)</script> answer", model="gpt-4o",
        input_tokens=10, output_tokens=20, cost_usd=Decimal("0.000123456789"), credits=Decimal("1.5"),
        tool_steps=[STEP],
    )  # fmt: skip
    q2 = await service.add_user_message(db, me, cid, content="Second question")
    a2 = await service.add_assistant_message(
        db, me, cid, parent_id=q2.id, content="Half an ans", status=MessageStatus.stopped, model="gpt-4o"
    )
    q2b = await service.add_user_message(db, me, cid, content="Second, edited", edit_of=q2.id)
    a2b = await service.add_assistant_message(
        db,
        me,
        cid,
        parent_id=q2b.id,
        content="",
        status=MessageStatus.error,
        error="No credits",
        model="gpt-4o",
    )
    await db.commit()
    return {"cid": cid, "q1": q1.id, "a1": a1.id, "q2": q2.id, "a2": a2.id, "q2b": q2b.id, "a2b": a2b.id}


async def _messages(
    client: AsyncClient, headers: dict[str, str], cid: Any, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(f"{CONVERSATIONS}/{cid}/messages", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# ---- branch into a new thread ----


async def test_a_branch_becomes_a_new_conversation(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    t = await _tree(db, org)
    h = org.member_headers
    before = await _messages(client, h, t["cid"], tree="true")
    original = (await client.get(f"{CONVERSATIONS}/{t['cid']}", headers=h)).json()

    forked = await client.post(
        f"{CONVERSATIONS}/{t['cid']}/branch", json={"message_id": str(t["a2"])}, headers=h
    )
    assert forked.status_code == 201, forked.text
    copy = forked.json()
    assert copy["id"] != str(t["cid"])
    assert (copy["title"], copy["agent"], copy["model"], copy["agent_id"]) == (
        "Plans (branch)", "Helper", "gpt-4o", original["agent_id"],
    )  # fmt: skip
    copied = await _messages(client, h, copy["id"])
    old = {m["id"]: m for m in before}
    expected = [old[str(t[k])] for k in ("q1", "a1", "q2", "a2")]
    fields = ("role", "content", "status", "error", "model", "input_tokens", "output_tokens", "cost_usd",
              "credits", "tool_steps", "created_at")  # fmt: skip
    assert [{f: m[f] for f in fields} for m in copied] == [{f: m[f] for f in fields} for m in expected]
    assert copied[1]["cost_usd"] == "0.000123456789"
    assert copied[1]["tool_steps"] == [STEP]
    assert copied[3]["status"] == "stopped"
    # New ids, the parent links rebuilt among them, and the copy reopens on the copy of a2.
    assert not {m["id"] for m in copied} & set(old)
    assert [m["parent_id"] for m in copied] == [None] + [m["id"] for m in copied[:-1]]
    assert copy["current_leaf_id"] == copied[-1]["id"]
    assert all(len(m["sibling_ids"]) == 1 for m in copied)  # the other branch is not copied

    # The original is unchanged.
    assert await _messages(client, h, t["cid"], tree="true") == before
    assert (await client.get(f"{CONVERSATIONS}/{t['cid']}", headers=h)).json() == original

    # Down to a message in the middle: exactly that far (not on to its replies).
    middle = await client.post(
        f"{CONVERSATIONS}/{t['cid']}/branch", json={"message_id": str(t["a1"])}, headers=h
    )
    assert [m["content"] for m in await _messages(client, h, middle.json()["id"])] == [
        "First question", "First <script>alert(1)</script> answer",
    ]  # fmt: skip
    listed = await client.get(CONVERSATIONS, headers=h)
    assert listed.json()["meta"]["total"] == 3


async def test_branch_refusals(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    t = await _tree(db, org)
    url = f"{CONVERSATIONS}/{t['cid']}/branch"
    unknown = await client.post(url, json={"message_id": str(uuid.uuid4())}, headers=org.member_headers)
    assert (unknown.status_code, error_of(unknown)["code"]) == (404, "message_not_found")
    for headers in (org.other_member_headers, org.stranger_headers):
        assert (await client.post(url, json={"message_id": str(t["q1"])}, headers=headers)).status_code == 404
    assert (await client.post(url, json={}, headers=org.member_headers)).status_code == 422
    assert (await client.get(CONVERSATIONS, headers=org.member_headers)).json()["meta"]["total"] == 1


async def test_a_long_title_keeps_the_suffix() -> None:
    assert history.branch_title("x" * 200) == "x" * 191 + " (branch)"
    assert len(history.branch_title("x" * 200)) == 200
    assert history.branch_title("") == "Untitled conversation (branch)"


async def test_a_2000_message_branch_is_copied(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    conversation = await service.start_conversation(db, me, model="gpt-4o", title="Long")
    at = utcnow() - timedelta(days=1)
    rows: list[dict[str, Any]] = []
    parent: uuid.UUID | None = None
    for n in range(2000):
        mid = uuid.uuid4()
        rows.append({
            "id": mid, "account_id": org.account.id, "conversation_id": conversation.id, "parent_id": parent,
            "role": Role.user if n % 2 == 0 else Role.assistant, "content": f"m{n}",
            "status": MessageStatus.complete,
            "model": "", "input_tokens": 0, "output_tokens": 0, "cost_usd": Decimal(0), "credits": Decimal(0),
            "tool_steps": [], "created_at": at + timedelta(milliseconds=n),
        })  # fmt: skip
        parent = mid
    await db.execute(insert(ConversationMessage), rows)
    await db.commit()
    assert parent is not None
    forked = await client.post(
        f"{CONVERSATIONS}/{conversation.id}/branch",
        json={"message_id": str(parent)},
        headers=org.member_headers,
    )
    assert forked.status_code == 201, forked.text
    copied = await _messages(client, org.member_headers, forked.json()["id"])
    assert len(copied) == 2000
    assert [m["content"] for m in copied[:2]] == ["m0", "m1"]
    assert copied[-1]["content"] == "m1999"
    assert all(m["parent_id"] == (copied[i - 1]["id"] if i else None) for i, m in enumerate(copied))
    assert await db.scalar(select(func.count()).select_from(ConversationMessage)) == 4000


# ---- export ----


async def test_export_as_markdown(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    t = await _tree(db, org)
    response = await client.get(f"{CONVERSATIONS}/{t['cid']}/export", headers=org.member_headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="plans-')
    assert disposition.endswith('.md"')
    text = response.text
    assert text.startswith("# Plans\n")
    assert "- With: Helper" in text
    # The current branch (the edited question and its failed answer), not the older one.
    assert text.count("## You") == 2
    assert "## Helper" in text
    assert "Second, edited" in text
    assert "Second question" not in text
    assert "_(failed: No credits)_" in text
    # The answer as written; the tool step collapsed, its summary escaped, its data in a fence that
    # its own backticks cannot close.
    assert "First <script>alert(1)</script> answer" in text
    assert "<details>\n<summary>Tool: CRM &lt;b&gt; · find (ok, 12 ms)</summary>" in text
    assert "````json\n" in text
    assert "\n```\n</details><script>alert(2)</script>\n```\n" in text


async def test_export_as_json_branch_and_tree(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    t = await _tree(db, org)
    url = f"{CONVERSATIONS}/{t['cid']}/export"
    branch = await client.get(url, params={"format": "json"}, headers=org.member_headers)
    assert branch.status_code == 200
    assert branch.headers["content-type"] == "application/json"
    assert branch.headers["x-content-type-options"] == "nosniff"
    assert branch.headers["content-disposition"].endswith('.json"')
    document = json.loads(branch.content)
    meta = document["conversation"]
    assert (meta["id"], meta["title"], meta["agent"], meta["model"], meta["scope"]) == (
        str(t["cid"]), "Plans", "Helper", "gpt-4o", "branch",
    )  # fmt: skip
    assert [m["id"] for m in document["messages"]] == [str(t[k]) for k in ("q1", "a1", "q2b", "a2b")]
    first_answer = document["messages"][1]
    assert set(first_answer) == {
        "id", "parent_id", "role", "content", "status", "error", "created_at", "model", "input_tokens",
        "output_tokens", "cost_usd", "credits", "tool_steps",
    }  # fmt: skip
    assert (first_answer["cost_usd"], first_answer["credits"], first_answer["tool_steps"]) == (
        "0.000123456789", "1.5", [STEP],
    )  # fmt: skip
    assert first_answer["content"] == "First <script>alert(1)</script> answer"
    assert b"<script>" not in branch.content  # ASCII-escaped JSON: the bytes are inert anyway

    whole = await client.get(url, params={"format": "json", "tree": "true"}, headers=org.member_headers)
    assert len(json.loads(whole.content)["messages"]) == 6
    assert json.loads(whole.content)["conversation"]["scope"] == "tree"

    md_tree = await client.get(url, params={"format": "md", "tree": "true"}, headers=org.member_headers)
    assert (md_tree.status_code, error_of(md_tree)["code"]) == (422, "tree_needs_json")
    assert (await client.get(url, params={"format": "html"}, headers=org.member_headers)).status_code == 422
    for headers in (org.other_member_headers, org.stranger_headers):
        assert (await client.get(url, headers=headers)).status_code == 404


async def test_hostile_titles_give_safe_file_names(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    me = Actor.for_user(org.member)
    conversation = await service.start_conversation(db, me, model="gpt-4o", title='"../x"; a=b\r\n é <b>')
    await db.commit()
    response = await client.get(f"{CONVERSATIONS}/{conversation.id}/export", headers=org.member_headers)
    assert response.status_code == 200
    name = response.headers["content-disposition"].removeprefix('attachment; filename="').removesuffix('"')
    assert name.startswith("x-a-b-e-b-")
    assert name.endswith(".md")
    assert all(c.isalnum() or c in "-." for c in name)
    when = utcnow()
    assert history.safe_filename("\x00\x00", "json", when=when).startswith("conversation-")
    assert history.safe_filename("日本語", "md", when=when).startswith("conversation-")
    assert history.safe_filename("Q3\x00 plan", "md", when=when).startswith("q3-plan-")
