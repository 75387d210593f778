"""Conversations through the REST API (/api/v1/conversations): starting one with an agent or a
model and the refusals, the sidebar (list, search, pin, archive, delete, restore), isolation between
people and accounts, branches, hostile text and a large tree."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import service
from cockpit.conversations.models import Conversation, ConversationMessage, Role
from cockpit.kit.time import utcnow
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from tests.conversations.conftest import CONVERSATIONS, error_of, make_org, start

# ---- starting ----


async def test_start_with_an_agent_and_with_a_model(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    with_agent = await start(client, org.member_headers, agent="helper", title="  Plans  ")
    assert (with_agent["agent"], with_agent["model"], with_agent["title"]) == ("Helper", "gpt-4o", "Plans")
    assert with_agent["agent_id"] is not None
    bare = await start(client, org.member_headers, model="gpt-4o")
    assert (bare["agent_id"], bare["agent"], bare["model"], bare["title"]) == (None, None, "gpt-4o", "")
    assert (bare["pinned"], bare["archived"], bare["deleted_at"], bare["current_leaf_id"]) == (
        False, False, None, None,
    )  # fmt: skip
    read = await client.get(f"{CONVERSATIONS}/{bare['id']}", headers=org.member_headers)
    assert read.status_code == 200
    assert read.json() == bare


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"agent": "nobody"}, 422, "unknown_agent"),
        ({"agent": "lab"}, 422, "unknown_agent"),  # a project's agent the member cannot see
        ({"agent": "retired"}, 409, "agent_inactive"),
        ({"model": "nothing"}, 422, "unknown_model"),
        ({"model": "off"}, 422, "unknown_model"),
        ({"agent": "helper", "model": "gpt-4o"}, 422, None),
        ({}, 422, None),
        ({"title": "No choice"}, 422, None),
    ],
)
async def test_refusals(
    client: AsyncClient, db: AsyncSession, body: dict[str, Any], status: int, code: str | None
) -> None:
    org = await make_org(db)
    response = await client.post(CONVERSATIONS, json=body, headers=org.member_headers)
    assert response.status_code == status, response.text
    if code is not None:
        assert error_of(response)["code"] == code
    listed = await client.get(CONVERSATIONS, headers=org.member_headers)
    assert listed.json()["meta"]["total"] == 0


async def test_a_policy_that_denies_conversations_refuses_them(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    db.add(AccessPolicy(
        account_id=org.account.id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.feature, resource="conversations.use", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    response = await client.post(CONVERSATIONS, json={"model": "gpt-4o"}, headers=org.member_headers)
    assert response.status_code == 403
    assert error_of(response)["code"] == "feature_not_allowed"
    # Others are not concerned.
    await start(client, org.other_member_headers)


# ---- the sidebar ----


async def test_list_search_pin_archive_delete_restore(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    h = org.member_headers
    ids = {
        t: (await start(client, h, title=t))["id"] for t in ("Budget 2027", "Holiday plans", "Budget review")
    }
    await start(client, org.other_member_headers, title="Budget of someone else")

    async def titles(**params: Any) -> list[str]:
        response = await client.get(CONVERSATIONS, params=params, headers=h)
        assert response.status_code == 200, response.text
        return [c["title"] for c in response.json()["items"]]

    assert await titles() == ["Budget review", "Holiday plans", "Budget 2027"]  # latest first
    assert await titles(search="budget") == ["Budget review", "Budget 2027"]
    assert await titles(search="%") == []

    # A message is activity: that conversation comes first; a pinned one comes before all.
    me = Actor.for_user(org.member)
    await service.add_user_message(db, me, uuid.UUID(ids["Budget 2027"]), content="Hi")
    await db.commit()
    assert await titles() == ["Budget 2027", "Budget review", "Holiday plans"]
    url = f"{CONVERSATIONS}/{ids['Holiday plans']}"
    changed = await client.patch(url, json={"pinned": True, "title": "Summer holiday"}, headers=h)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["pinned"], changed.json()["title"]) == (True, "Summer holiday")
    assert await titles() == ["Summer holiday", "Budget 2027", "Budget review"]

    archived = await client.patch(
        f"{CONVERSATIONS}/{ids['Budget review']}", json={"archived": True}, headers=h
    )
    assert archived.json()["archived"] is True
    assert await titles() == ["Summer holiday", "Budget 2027"]
    assert await titles(archived=True) == ["Budget review"]

    deleted = await client.delete(f"{CONVERSATIONS}/{ids['Budget 2027']}", headers=h)
    assert deleted.status_code == 204
    assert await titles() == ["Summer holiday"]
    assert await titles(deleted=True) == ["Budget 2027"]
    gone = f"{CONVERSATIONS}/{ids['Budget 2027']}"
    assert (await client.get(gone, headers=h)).status_code == 404
    assert (await client.get(f"{gone}/messages", headers=h)).status_code == 404
    restored = await client.post(f"{gone}/restore", headers=h)
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    assert await titles() == ["Summer holiday", "Budget 2027"]
    # Restoring what is not deleted finds nothing to restore... and changes nothing.
    assert (await client.post(f"{gone}/restore", headers=h)).status_code == 200

    for bad in ({"title": None}, {"pinned": None}, {"colour": "red"}, {"title": "x" * 201}):
        response = await client.patch(url, json=bad, headers=h)
        assert response.status_code == 422, bad


async def test_another_persons_and_another_accounts_conversations_are_not_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    mine = await start(client, org.member_headers)
    me = Actor.for_user(org.member)
    question = await service.add_user_message(db, me, uuid.UUID(mine["id"]), content="Private")
    await db.commit()
    url = f"{CONVERSATIONS}/{mine['id']}"
    for headers in (org.other_member_headers, org.stranger_headers):
        assert (await client.get(url, headers=headers)).status_code == 404
        assert (await client.patch(url, json={"title": "Mine"}, headers=headers)).status_code == 404
        assert (await client.delete(url, headers=headers)).status_code == 404
        assert (await client.post(f"{url}/restore", headers=headers)).status_code == 404
        assert (await client.get(f"{url}/messages", headers=headers)).status_code == 404
        assert (await client.get(f"{url}/messages?tree=true", headers=headers)).status_code == 404
        leaf = await client.get(f"{url}/messages", params={"leaf_id": str(question.id)}, headers=headers)
        assert leaf.status_code == 404
        listed = await client.get(CONVERSATIONS, headers=headers)
        assert mine["id"] not in [c["id"] for c in listed.json()["items"]]
    # Nothing changed.
    read = await client.get(url, headers=org.member_headers)
    assert (read.json()["title"], read.json()["deleted_at"]) == ("", None)
    assert (await client.get(url)).status_code == 401


# ---- messages and branches ----


async def test_branches_through_the_api(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    h = org.member_headers
    conversation = await start(client, h, agent="helper")
    cid = uuid.UUID(conversation["id"])
    me = Actor.for_user(org.member)
    q1 = await service.add_user_message(db, me, cid, content="Hello")
    a1 = await service.add_assistant_message(db, me, cid, parent_id=q1.id, content="Hi", model="gpt-4o")
    q2 = await service.add_user_message(db, me, cid, content="First question")
    q2b = await service.add_user_message(db, me, cid, content="Second question", parent_id=a1.id)
    await db.commit()

    url = f"{CONVERSATIONS}/{cid}/messages"
    current = (await client.get(url, headers=h)).json()
    assert current["current_leaf_id"] == str(q2b.id)
    assert [m["content"] for m in current["items"]] == ["Hello", "Hi", "Second question"]
    last = current["items"][-1]
    assert (last["parent_id"], last["role"], last["sibling_index"]) == (str(a1.id), "user", 1)
    assert last["sibling_ids"] == [str(q2.id), str(q2b.id)]
    assert current["items"][1]["model"] == "gpt-4o"
    assert current["items"][1]["cost_usd"] == "0"

    other = (await client.get(url, params={"leaf_id": str(q2.id)}, headers=h)).json()
    assert [m["content"] for m in other["items"]] == ["Hello", "Hi", "First question"]
    unknown = await client.get(url, params={"leaf_id": str(uuid.uuid4())}, headers=h)
    assert unknown.status_code == 404

    whole = (await client.get(url, params={"tree": "true"}, headers=h)).json()
    assert len(whole["items"]) == 4

    # Switching branch is remembered: the conversation reopens there.
    switched = await client.patch(f"{CONVERSATIONS}/{cid}", json={"current_leaf_id": str(q2.id)}, headers=h)
    assert switched.json()["current_leaf_id"] == str(q2.id)
    again = (await client.get(url, headers=h)).json()
    assert [m["content"] for m in again["items"]][-1] == "First question"
    elsewhere = await client.patch(
        f"{CONVERSATIONS}/{cid}", json={"current_leaf_id": str(uuid.uuid4())}, headers=h
    )
    assert elsewhere.status_code == 404


@pytest.mark.parametrize("title", ["nul \x00", "lone \ud800"])
async def test_hostile_text_is_refused_and_nothing_is_stored(
    client: AsyncClient, db: AsyncSession, title: str
) -> None:
    org = await make_org(db)
    h = {**org.member_headers, "Content-Type": "application/json"}
    # JSON escapes (\u0000, \ud800): valid JSON, text that cannot be stored.
    body = json.dumps({"model": "gpt-4o", "title": title})
    response = await client.post(CONVERSATIONS, content=body, headers=h)
    assert response.status_code in (400, 422), response.text
    assert error_of(response)["code"] in ("invalid_text", "validation_error", "invalid_input")
    listed = await client.get(CONVERSATIONS, headers=h)
    assert listed.json()["meta"]["total"] == 0
    mine = await start(client, org.member_headers, title="Fine")
    url = f"{CONVERSATIONS}/{mine['id']}"
    renamed = await client.patch(url, content=json.dumps({"title": title}), headers=h)
    assert renamed.status_code in (400, 422)
    read = await client.get(url, headers=h)
    assert read.json()["title"] == "Fine"
    searched = await client.get(f"{CONVERSATIONS}?search=%00", headers=h)
    assert searched.status_code in (400, 422)
    hostile_leaf = await client.get(f"{url}/messages?leaf_id=%00", headers=h)
    assert hostile_leaf.status_code in (400, 422)


async def test_a_conversation_of_2000_messages_loads(client: AsyncClient, db: AsyncSession) -> None:
    """1,000 exchanges; every 20th question was also edited (a sibling branch of one exchange)."""
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    cid = uuid.UUID(conversation["id"])
    base = utcnow()
    rows: list[ConversationMessage] = []
    parent: uuid.UUID | None = None
    edits: list[uuid.UUID] = []
    for n in range(1000):
        question = uuid.uuid4()
        answer = uuid.uuid4()
        at = base + timedelta(milliseconds=4 * n)
        rows.append(_message(org.account.id, cid, question, parent, Role.user, f"q{n}", at))
        if n % 20 == 0:
            edit = uuid.uuid4()
            edits.append(edit)
            rows.append(
                _message(
                    org.account.id, cid, edit, parent, Role.user, f"edit{n}", at + timedelta(microseconds=500)
                )
            )
        rows.append(
            _message(
                org.account.id, cid, answer, question, Role.assistant, f"a{n}", at + timedelta(milliseconds=1)
            )
        )
        parent = answer
    db.add_all(rows)
    await db.commit()
    assert parent is not None
    me = Actor.for_user(org.member)
    await service.select_branch(db, me, cid, parent)  # the last answer
    await db.commit()

    url = f"{CONVERSATIONS}/{cid}/messages"
    branch = await client.get(url, headers=org.member_headers)
    assert branch.status_code == 200
    items = branch.json()["items"]
    assert len(items) == 2000
    assert [m["content"] for m in items[:4]] == ["q0", "a0", "q1", "a1"]
    assert items[-1]["content"] == "a999"
    assert all(m["parent_id"] == (items[i - 1]["id"] if i else None) for i, m in enumerate(items))
    assert [len(m["sibling_ids"]) for m in items[:4]] == [2, 1, 1, 1]
    assert items[40]["content"] == "q20"
    assert (len(items[40]["sibling_ids"]), items[40]["sibling_index"]) == (2, 0)

    whole = await client.get(url, params={"tree": "true"}, headers=org.member_headers)
    assert len(whole.json()["items"]) == 2000 + len(edits)
    edited = await client.get(url, params={"leaf_id": str(edits[-1])}, headers=org.member_headers)
    assert [m["content"] for m in edited.json()["items"]][-3:] == ["q979", "a979", "edit980"]
    count = await db.scalar(select(func.count()).select_from(ConversationMessage))
    assert count == 2050

    # Purged (as after 30 days, or with its account): a branch this deep goes at once on SQLite too.
    await db.execute(delete(Conversation).where(Conversation.id == cid))
    await db.commit()
    assert await db.scalar(select(func.count()).select_from(ConversationMessage)) == 0


def _message(
    account_id: uuid.UUID,
    conversation_id: uuid.UUID,
    message_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    role: Role,
    content: str,
    at: Any,
) -> ConversationMessage:
    return ConversationMessage(
        id=message_id, account_id=account_id, conversation_id=conversation_id, parent_id=parent_id,
        role=role, content=content, model="gpt-4o" if role is Role.assistant else "", created_at=at,
    )  # fmt: skip
