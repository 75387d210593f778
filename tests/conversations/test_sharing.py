"""Sharing a conversation read-only with people of the same account, and administrators' review
(the account setting, the audit entry and what the owner sees), through the API and the console."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.authz.actor import Actor
from cockpit.conversations import service
from cockpit.conversations.models import ConversationReview
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.users.models import UserStatus
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user
from tests.conversations.conftest import CONVERSATIONS, Org, error_of, make_org, start


async def _with_messages(db: AsyncSession, org: Org, title: str = "Plans") -> uuid.UUID:
    """A conversation of the member with one exchange, written through the service."""
    me = Actor.for_user(org.member)
    conversation = await service.start_conversation(db, me, model="gpt-4o", title=title)
    asked = await service.add_user_message(db, me, conversation.id, content="What is <b>2+2</b>?")
    await service.add_assistant_message(
        db, me, conversation.id, parent_id=asked.id, content="4 <script>alert(1)</script>", model="gpt-4o"
    )
    await db.commit()
    return conversation.id


async def _share(client: AsyncClient, org: Org, cid: uuid.UUID, user_id: uuid.UUID) -> Any:
    return await client.post(
        f"{CONVERSATIONS}/{cid}/shares", json={"user_id": str(user_id)}, headers=org.member_headers
    )


async def _enable_review(client: AsyncClient, headers: dict[str, str], on: bool = True) -> None:
    response = await client.patch(
        "/api/v1/account", json={"conversation_review_enabled": on}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["conversation_review_enabled"] is on


# ---- sharing ----


async def test_a_shared_conversation_is_readable_and_nothing_more(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    url = f"{CONVERSATIONS}/{cid}"
    reader = org.other_member_headers
    assert (await client.get(url, headers=reader)).status_code == 404  # not shared yet

    shared = await _share(client, org, cid, org.other_member.id)
    assert shared.status_code == 201, shared.text
    assert shared.json()["user_id"] == str(org.other_member.id)
    assert shared.json()["email"] == org.other_member.email
    listed = await client.get(f"{url}/shares", headers=org.member_headers)
    assert [s["user_id"] for s in listed.json()["items"]] == [str(org.other_member.id)]

    read = await client.get(url, headers=reader)
    assert read.status_code == 200
    assert (read.json()["access"], read.json()["title"]) == ("shared", "Plans")
    own = await client.get(url, headers=org.member_headers)
    assert own.json()["access"] == "owner"
    messages = await client.get(f"{url}/messages", headers=reader)
    assert [m["content"] for m in messages.json()["items"]] == [
        "What is <b>2+2</b>?",
        "4 <script>alert(1)</script>",
    ]
    assert (await client.get(f"{url}/messages", params={"tree": "true"}, headers=reader)).status_code == 200
    mine = await client.get(f"{CONVERSATIONS}/shared", headers=reader)
    assert [(c["id"], c["access"], c["owner_id"]) for c in mine.json()["items"]] == [
        (str(cid), "shared", str(org.member.id))
    ]
    assert mine.json()["meta"]["total"] == 1
    # The reader's own list and the owner's "shared with me" are not concerned.
    assert (await client.get(CONVERSATIONS, headers=reader)).json()["meta"]["total"] == 0
    assert (await client.get(f"{CONVERSATIONS}/shared", headers=org.member_headers)).json()["items"] == []

    # Read-only: every change is a 404 for the reader (as for anyone else's conversation).
    refused = [
        await client.patch(url, json={"title": "Mine now"}, headers=reader),
        await client.delete(url, headers=reader),
        await client.post(f"{url}/messages", json={"content": "hi"}, headers=reader),
        await client.post(f"{url}/restore", headers=reader),
        await client.get(f"{url}/shares", headers=reader),
        await client.post(f"{url}/shares", json={"user_id": str(org.owner.id)}, headers=reader),
        await client.delete(f"{url}/shares/{org.other_member.id}", headers=reader),
        await client.get(f"{url}/reviews", headers=reader),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused)
    assert (await client.get(url, headers=org.member_headers)).json()["title"] == "Plans"

    # Another account never sees it.
    assert (await client.get(url, headers=org.stranger_headers)).status_code == 404
    assert (await client.get(f"{url}/messages", headers=org.stranger_headers)).status_code == 404

    # Unshared: gone for the reader.
    removed = await client.delete(f"{url}/shares/{org.other_member.id}", headers=org.member_headers)
    assert removed.status_code == 204
    assert (await client.get(url, headers=reader)).status_code == 404
    assert (await client.get(f"{CONVERSATIONS}/shared", headers=reader)).json()["items"] == []
    again = await client.delete(f"{url}/shares/{org.other_member.id}", headers=org.member_headers)
    assert (again.status_code, error_of(again)["code"]) == (404, "share_not_found")
    actions = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.target_id == str(cid)).order_by(AuditEntry.seq)
    )
    assert list(actions) == ["conversation.shared", "conversation.unshared"]


async def test_a_deleted_conversation_is_not_readable_by_its_readers(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    assert (await _share(client, org, cid, org.other_member.id)).status_code == 201
    assert (await client.delete(f"{CONVERSATIONS}/{cid}", headers=org.member_headers)).status_code == 204
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=org.other_member_headers)).status_code == 404
    listed = await client.get(f"{CONVERSATIONS}/shared", headers=org.other_member_headers)
    assert listed.json()["items"] == []


async def test_who_a_conversation_can_be_shared_with(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    other_account, outsider = await make_account(db, name="Elsewhere")
    gone = await make_user(db, org.account, status=UserStatus.deactivated)
    for person in (outsider.id, gone.id, uuid.uuid4()):
        refused = await _share(client, org, cid, person)
        assert (refused.status_code, error_of(refused)["code"]) == (422, "unknown_user")
    own = await _share(client, org, cid, org.member.id)
    assert (own.status_code, error_of(own)["code"]) == (422, "share_with_owner")
    assert (await _share(client, org, cid, org.owner.id)).status_code == 201
    twice = await _share(client, org, cid, org.owner.id)
    assert (twice.status_code, error_of(twice)["code"]) == (409, "already_shared")
    # Someone else's conversation, or another account's: 404.
    other = await client.post(
        f"{CONVERSATIONS}/{cid}/shares", json={"user_id": str(org.owner.id)}, headers=org.other_member_headers
    )
    assert other.status_code == 404
    stranger = await client.post(
        f"{CONVERSATIONS}/{cid}/shares", json={"user_id": str(outsider.id)}, headers=org.stranger_headers
    )
    assert stranger.status_code == 404
    bad = await client.post(
        f"{CONVERSATIONS}/{cid}/shares", json={"user_id": "nope"}, headers=org.member_headers
    )
    assert bad.status_code == 422
    assert other_account.id != org.account.id


async def test_a_policy_that_denies_sharing_refuses_it(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    db.add(AccessPolicy(
        account_id=org.account.id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.feature, resource="conversations.share", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    refused = await _share(client, org, cid, org.other_member.id)
    assert (refused.status_code, error_of(refused)["code"]) == (403, "feature_not_allowed")
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=org.other_member_headers)).status_code == 404


async def test_a_reader_can_branch_the_conversation_into_their_own(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    assert (await _share(client, org, cid, org.other_member.id)).status_code == 201
    messages = (await client.get(f"{CONVERSATIONS}/{cid}/messages", headers=org.member_headers)).json()[
        "items"
    ]
    forked = await client.post(
        f"{CONVERSATIONS}/{cid}/branch",
        json={"message_id": messages[-1]["id"]},
        headers=org.other_member_headers,
    )
    assert forked.status_code == 201, forked.text
    assert (forked.json()["access"], forked.json()["title"]) == ("owner", "Plans (branch)")
    mine = await client.get(CONVERSATIONS, headers=org.other_member_headers)
    assert [c["id"] for c in mine.json()["items"]] == [forked.json()["id"]]


# ---- review ----


async def test_review_is_off_by_default(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    admin = bearer(await make_token(db, org.owner))
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=admin)).status_code == 404
    assert (await client.get(f"{CONVERSATIONS}/{cid}/messages", headers=admin)).status_code == 404
    listed = await client.get(f"{CONVERSATIONS}/review", headers=admin)
    assert (listed.status_code, error_of(listed)["code"]) == (403, "conversation_review_off")
    assert await db.scalar(select(ConversationReview.id)) is None


async def test_an_administrator_reviews_and_the_owner_sees_it(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org)
    other = await start(client, org.other_member_headers, title="Other's")
    admin = bearer(await make_token(db, org.owner))
    await _enable_review(client, admin)

    listed = await client.get(f"{CONVERSATIONS}/review", headers=admin)
    assert listed.status_code == 200
    assert {c["id"] for c in listed.json()["items"]} == {str(cid), other["id"]}
    assert {c["access"] for c in listed.json()["items"]} == {"review"}
    one = await client.get(f"{CONVERSATIONS}/review", params={"user_id": str(org.member.id)}, headers=admin)
    assert [(c["id"], c["owner"]) for c in one.json()["items"]] == [(str(cid), org.member.display_name)]
    titled = await client.get(f"{CONVERSATIONS}/review", params={"q": "other"}, headers=admin)
    assert [c["id"] for c in titled.json()["items"]] == [other["id"]]
    # Members may not review, even with the setting on; another account sees nothing.
    member_list = await client.get(f"{CONVERSATIONS}/review", headers=org.other_member_headers)
    assert member_list.status_code == 403
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=org.other_member_headers)).status_code == 404
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=org.stranger_headers)).status_code == 404
    assert (await client.get(f"{CONVERSATIONS}/review", headers=org.stranger_headers)).status_code == 403
    assert await db.scalar(select(ConversationReview.id)) is None  # listing is not reviewing

    read = await client.get(f"{CONVERSATIONS}/{cid}", headers=admin)
    assert (read.status_code, read.json()["access"]) == (200, "review")
    messages = await client.get(f"{CONVERSATIONS}/{cid}/messages", headers=admin)
    assert len(messages.json()["items"]) == 2
    # The reviewer reads, never writes.
    assert (
        await client.patch(f"{CONVERSATIONS}/{cid}", json={"title": "x"}, headers=admin)
    ).status_code == 404
    forked = await client.post(
        f"{CONVERSATIONS}/{cid}/branch", json={"message_id": messages.json()["items"][0]["id"]}, headers=admin
    )
    assert (forked.status_code, error_of(forked)["code"]) == (403, "fork_not_allowed")

    entries = list(
        await db.scalars(
            select(AuditEntry).where(AuditEntry.action == "conversation.reviewed").order_by(AuditEntry.seq)
        )
    )
    assert len(entries) == 2  # one per request that read it
    assert entries[0].target_type == "conversation"
    assert entries[0].target_id == str(cid)
    assert entries[0].target_label == "Plans"
    assert entries[0].actor_id == org.owner.id
    assert entries[0].after is not None
    assert entries[0].after["owner"] == org.member.email

    reviews = await client.get(f"{CONVERSATIONS}/{cid}/reviews", headers=org.member_headers)
    assert reviews.status_code == 200
    assert [(r["reviewer_id"], r["reviewer"]) for r in reviews.json()["items"]] == [
        (str(org.owner.id), org.owner.display_name)
    ] * 2
    assert reviews.json()["meta"]["total"] == 2
    assert (await client.get(f"{CONVERSATIONS}/{cid}/reviews", headers=admin)).status_code == 404

    # Off again: back to 404.
    await _enable_review(client, admin, on=False)
    assert (await client.get(f"{CONVERSATIONS}/{cid}", headers=admin)).status_code == 404


async def test_the_account_settings_are_validated_and_audited(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    admin = bearer(await make_token(db, org.owner))
    for body in (
        {"conversation_retention_days": -1},
        {"conversation_retention_days": 3651},
        {"conversation_retention_days": "30"},
        {"conversation_retention_days": True},
        {"conversation_review_enabled": "yes"},
    ):
        refused = await client.patch("/api/v1/account", json=body, headers=admin)
        assert refused.status_code == 422, body
    member = await client.patch(
        "/api/v1/account", json={"conversation_review_enabled": True}, headers=org.member_headers
    )
    assert member.status_code == 403
    changed = await client.patch(
        "/api/v1/account",
        json={"conversation_review_enabled": True, "conversation_retention_days": 90},
        headers=admin,
    )
    assert changed.status_code == 200
    assert (changed.json()["conversation_review_enabled"], changed.json()["conversation_retention_days"]) == (
        True, 90,
    )  # fmt: skip
    entry = await db.scalar(
        select(AuditEntry).where(AuditEntry.action == "account.updated").order_by(AuditEntry.seq.desc())
    )
    assert entry is not None
    assert entry.before == {"conversation_review_enabled": False, "conversation_retention_days": 0}
    assert entry.after == {"conversation_review_enabled": True, "conversation_retention_days": 90}


# ---- console ----


async def test_sharing_and_reviewing_in_the_console(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    cid = await _with_messages(db, org, title="Roadmap")
    await console_login(client, org.member.email)
    panel = await client.get(f"/conversations/{cid}/share-panel")
    assert panel.status_code == 200
    assert org.other_member.email in panel.text
    assert "Not shared with anyone" in panel.text
    searched = await client.get(f"/conversations/{cid}/share-panel", params={"q": "nobody-like-this"})
    assert org.other_member.email not in searched.text
    token = await csrf_for(client, f"/conversations/{cid}/share-panel")
    added = await client.post(
        f"/conversations/{cid}/shares",
        data={"csrf_token": token, "user_id": str(org.other_member.id)},
        headers={"HX-Request": "true"},
    )
    assert added.status_code == 200
    assert "Shared read-only with" in added.text
    no_csrf = await client.post(f"/conversations/{cid}/shares", data={"user_id": str(org.owner.id)})
    assert no_csrf.status_code == 403
    download = await client.get(f"/conversations/{cid}/export.md")
    assert download.headers["content-type"] == "text/markdown; charset=utf-8"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in download.headers["content-disposition"]

    # The reader: the shared list and a read-only view (escaped, no message box).
    await client.post("/logout", data={"csrf_token": await csrf_for(client, "/conversations")})
    client.cookies.clear()
    await console_login(client, org.other_member.email)
    listing = await client.get("/conversations/shared")
    assert listing.status_code == 200
    assert "Roadmap" in listing.text
    view = await client.get(f"/conversations/shared/{cid}")
    assert view.status_code == 200
    assert 'data-testid="readonly-thread"' in view.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.text
    assert "<script>alert(1)</script>" not in view.text
    assert 'name="content"' not in view.text
    assert (await client.get(f"/conversations/{cid}/share-panel")).status_code == 404
    token = await csrf_for(client, "/conversations/shared")
    forked = await client.post(f"/conversations/{cid}/fork", data={"csrf_token": token, "message_id": ""})
    assert forked.status_code == 303
    assert forked.headers["location"].startswith("/conversations/")
    assert forked.headers["location"] != f"/conversations/{cid}"

    # The owner of the account: review off, then on.
    client.cookies.clear()
    await console_login(client, org.owner.email)
    off = await client.get("/conversations/review")
    assert off.status_code == 200
    assert 'data-testid="review-off"' in off.text
    assert "/account#conversations" in off.text
    token = await csrf_for(client, "/account")
    saved = await client.post(
        "/account/conversations",
        data={"csrf_token": token, "conversation_review_enabled": "true", "conversation_retention_days": "0"},
    )
    assert saved.status_code == 303
    on = await client.get("/conversations/review")
    assert "Roadmap" in on.text
    # The "shared with me" view is not a way to review: 404, nothing recorded.
    assert (await client.get(f"/conversations/shared/{cid}")).status_code == 404
    assert await db.scalar(select(ConversationReview.id)) is None
    opened = await client.get(f"/conversations/review/{cid}")
    assert opened.status_code == 200
    assert 'data-testid="readonly-thread"' in opened.text
    reviews = list(
        await db.scalars(select(ConversationReview).where(ConversationReview.conversation_id == cid))
    )
    assert [r.reviewer_id for r in reviews] == [org.owner.id]
