"""Full-text search over a person's conversations (GET /api/v1/conversations/search): titles and
messages, only the caller's own (never another person's or another account's, never a deleted one),
hostile queries (refused or harmless, never a server error), paging, and the index kept in step
when messages are added, edited or go with their conversation."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from typing import Any

import pytest
from alembic import command
from httpx import AsyncClient
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import search, service
from cockpit.conversations.models import Conversation, ConversationMessage
from cockpit.kit.errors import InvalidInput
from cockpit.kit.migrate import alembic_config, upgrade
from cockpit.kit.pagination import PageParams
from tests.audit.test_migration import _run, _uuid, empty_database
from tests.conftest import _in_thread
from tests.conversations.conftest import CONVERSATIONS, Org, error_of, make_org, start

__all__ = ["empty_database"]  # the fixture, shared with the audit migration's test

SEARCH = f"{CONVERSATIONS}/search"


async def _found(client: AsyncClient, headers: dict[str, str], q: str, **params: Any) -> dict[str, Any]:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _titles(client: AsyncClient, headers: dict[str, str], q: str) -> list[str]:
    return [hit["title"] for hit in (await _found(client, headers, q))["items"]]


async def _say(db: AsyncSession, org: Org, conversation: dict[str, Any], *contents: str) -> list[uuid.UUID]:
    """Messages of the member (as if asked), committed; their ids."""
    me = Actor.for_user(org.member)
    ids = []
    for content in contents:
        message = await service.add_user_message(db, me, uuid.UUID(conversation["id"]), content=content)
        ids.append(message.id)
    await db.commit()
    return ids


async def test_words_are_found_in_titles_and_in_messages(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    h = org.member_headers
    budget = await start(client, h, title="Budget 2027")
    holiday = await start(client, h, agent="helper", title="Holiday plans")
    [asked] = await _say(db, org, holiday, "Which hotels near the Lisbon waterfront have rooms in May?")
    await _say(db, org, budget, "Rough numbers first.")

    found = await _found(client, h, "lisbon hotel")  # every word, "hotel" as the start of "hotels"
    assert found["meta"]["total"] == 1
    [hit] = found["items"]
    assert (hit["conversation_id"], hit["title"], hit["agent"], hit["model"]) == (
        holiday["id"], "Holiday plans", "Helper", "gpt-4o",
    )  # fmt: skip
    assert (hit["message_id"], hit["message_role"], hit["in_title"], hit["archived"]) == (
        str(asked), "user", False, False,
    )  # fmt: skip
    assert hit["snippet"] == "Which hotels near the Lisbon waterfront have rooms in May?"
    assert [p["text"] for p in hit["snippet_parts"] if p["match"]] == ["hotels", "Lisbon"]

    assert await _titles(client, h, "LISBON") == ["Holiday plans"]  # case does not matter
    assert await _titles(client, h, "lisbon paris") == []  # every word must be there
    # A title: found with no message, snippet the title itself.
    [title_hit] = (await _found(client, h, "budget"))["items"]
    assert (title_hit["title"], title_hit["in_title"], title_hit["message_id"]) == ("Budget 2027", True, None)
    assert [p for p in title_hit["snippet_parts"] if p["match"]] == [{"text": "Budget", "match": True}]
    # Answers are found too.
    answer = await service.add_assistant_message(
        db, Actor.for_user(org.member), uuid.UUID(holiday["id"]), parent_id=asked, content="Try Alfama."
    )
    await db.commit()
    [hit] = (await _found(client, h, "alfama"))["items"]
    assert (hit["message_id"], hit["message_role"]) == (str(answer.id), "assistant")
    # Titles that match come first, then the messages.
    await _say(db, org, holiday, "And what budget for a week?")
    assert await _titles(client, h, "budget") == ["Budget 2027", "Holiday plans"]


async def test_only_the_callers_own_conversations_are_found(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    mine = await start(client, org.member_headers, title="Mine")
    await _say(db, org, mine, "the secret word is xylophone")
    theirs = await start(client, org.other_member_headers, title="Xylophone lessons")
    other = Actor.for_user(org.other_member)
    await service.add_user_message(db, other, uuid.UUID(theirs["id"]), content="xylophone for beginners")
    await db.commit()

    assert await _titles(client, org.member_headers, "xylophone") == ["Mine"]
    assert await _titles(client, org.other_member_headers, "xylophone") == ["Xylophone lessons"]
    assert (await _found(client, org.stranger_headers, "xylophone"))["items"] == []


async def test_another_accounts_conversations_are_never_found(client: AsyncClient, db: AsyncSession) -> None:
    first, second = await make_org(db), await make_org(db)
    ours = await start(client, first.member_headers, title="Quarterly")
    theirs = await start(client, second.member_headers, title="Quarterly")
    await _say(db, first, ours, "zeppelin")
    await _say(db, second, theirs, "zeppelin")
    for org, conversation in ((first, ours), (second, theirs)):
        found = await _found(client, org.member_headers, "zeppelin")
        assert [hit["conversation_id"] for hit in found["items"]] == [conversation["id"]]


async def test_deleted_conversations_are_not_found_archived_ones_are_flagged(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    h = org.member_headers
    kept = await start(client, h, title="Kept")
    gone = await start(client, h, title="Gone")
    await _say(db, org, kept, "marmalade recipe")
    await _say(db, org, gone, "marmalade again")
    assert (await client.delete(f"{CONVERSATIONS}/{gone['id']}", headers=h)).status_code == 204
    assert await _titles(client, h, "marmalade") == ["Kept"]
    await client.patch(f"{CONVERSATIONS}/{kept['id']}", json={"archived": True}, headers=h)
    [hit] = (await _found(client, h, "marmalade"))["items"]
    assert (hit["title"], hit["archived"]) == ("Kept", True)
    # Restored: found again.
    assert (await client.post(f"{CONVERSATIONS}/{gone['id']}/restore", headers=h)).status_code == 200
    assert sorted(await _titles(client, h, "marmalade")) == ["Gone", "Kept"]


async def test_the_index_follows_new_edited_and_removed_messages(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    h = org.member_headers
    conversation = await start(client, h, title="Notes")
    [first] = await _say(db, org, conversation, "the first draft mentions apricots")
    assert await _titles(client, h, "apricots") == ["Notes"]
    assert await _titles(client, h, "quinces") == []

    # A new version of a message (a branch beside it) is found, and so is the old one.
    me = Actor.for_user(org.member)
    edited = await service.add_user_message(
        db, me, uuid.UUID(conversation["id"]), content="the second draft mentions quinces", edit_of=first
    )
    await db.commit()
    [hit] = (await _found(client, h, "quinces"))["items"]
    assert hit["message_id"] == str(edited.id)
    assert await _titles(client, h, "apricots") == ["Notes"]

    # A message whose text changes in place (e.g. a stopped answer completed) is found by its new text.
    await db.execute(
        update(ConversationMessage).where(ConversationMessage.id == first).values(content="now about figs")
    )
    await db.commit()
    assert await _titles(client, h, "figs") == ["Notes"]
    assert await _titles(client, h, "apricots") == []

    # A purge removes the conversation, and its messages with it (ON DELETE CASCADE): the index
    # keeps nothing of them.
    await db.execute(delete(Conversation).where(Conversation.id == uuid.UUID(conversation["id"])))
    await db.commit()
    assert await _titles(client, h, "quinces") == []
    assert await db.scalar(text("SELECT count(*) FROM conversation_search")) == 0


async def test_a_conversation_deleted_after_it_was_found_is_no_longer_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    h = org.member_headers
    conversation = await start(client, h, title="Temporary")
    await _say(db, org, conversation, "walrus")
    assert await _titles(client, h, "walrus") == ["Temporary"]
    assert (await client.delete(f"{CONVERSATIONS}/{conversation['id']}", headers=h)).status_code == 204
    assert await _titles(client, h, "walrus") == []
    assert await _titles(client, h, "temporary") == []


# (query, whether the conversation "Sea" with "a walrus has a tusk" is found)
HOSTILE = [
    ('"', False),
    ('""', False),
    ('"unbalanced', False),
    ('walrus"', True),
    ("*", False),
    ("walrus*", True),
    ("wal*", True),
    ("NEAR(", False),
    ("NEAR(walrus tusk, 2)", False),  # "near" and "2" are words too, not in the message
    ("AND OR", False),
    ("walrus AND", False),
    ("OR NOT", False),
    ("-walrus", True),
    ("walrus -tusk", True),
    (":", False),
    ("body:walrus", False),
    ("owner:walrus", False),
    ("message_id:x", False),
    ("{owner body}: walrus", False),
    ("^walrus", True),
    ("'walrus' & !tusk", True),
    ("walrus:* | x", False),
    ("(walrus", True),
    ("walrus)", True),
    ("a_b", False),
    ("%_\\", False),
    ("🦭 walrus", True),
    ("   ", False),
    ("", False),
    ("x" * 200, False),
    (" ".join(["walrus"] * 60)[:200], True),
]


@pytest.mark.parametrize(("q", "found"), HOSTILE)
async def test_operators_and_quotes_are_plain_words(
    client: AsyncClient, db: AsyncSession, q: str, found: bool
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers, title="Sea")
    await _say(db, org, conversation, "a walrus has a tusk")
    titles = [hit["title"] for hit in (await _found(client, org.member_headers, q))["items"]]
    assert titles == (["Sea"] if found else [])


@pytest.mark.parametrize(
    ("q", "status"),
    [
        ("walrus\x00", 400),  # refused with every query string holding a NUL, before the route
        ("x" * 10_000, 422),
        ("x" * 201, 422),
    ],
)
async def test_a_query_that_cannot_be_searched_is_refused(
    client: AsyncClient, db: AsyncSession, q: str, status: int
) -> None:
    org = await make_org(db)
    response = await client.get(SEARCH, params={"q": q}, headers=org.member_headers)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] in {"invalid_query", "invalid_input", "invalid_text"}


async def test_invalid_utf8_in_the_url_and_a_lone_surrogate(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    # A surrogate encoded in the URL (not valid UTF-8): read as replacement characters, no error.
    response = await client.get(f"{SEARCH}?q=%ED%A0%80walrus", headers=org.member_headers)
    assert response.status_code in (200, 422), response.text
    # A lone surrogate reaching the service (as from a JSON body "\ud800"): refused.
    with pytest.raises(InvalidInput):
        await search.search_conversations(db, Actor.for_user(org.member), "walrus\ud800")


async def test_paging(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    h = org.member_headers
    for i in range(5):
        conversation = await start(client, h, title=f"Thread {i}")
        await _say(db, org, conversation, f"pelican number {i}")
    first = await _found(client, h, "pelican", per_page=2)
    assert first["meta"] == {"page": 1, "per_page": 2, "total": 5, "pages": 3}
    # Equally relevant: the latest activity first.
    assert [hit["title"] for hit in first["items"]] == ["Thread 4", "Thread 3"]
    pages = [first["items"]] + [
        (await _found(client, h, "pelican", per_page=2, page=p))["items"] for p in (2, 3)
    ]
    assert [hit["title"] for page in pages for hit in page] == [f"Thread {i}" for i in (4, 3, 2, 1, 0)]
    beyond = await _found(client, h, "pelican", per_page=2, page=9)
    assert (beyond["items"], beyond["meta"]["total"]) == ([], 5)


async def test_relevance_orders_the_results(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    h = org.member_headers
    often = await start(client, h, title="Often")
    once = await start(client, h, title="Once")
    await _say(db, org, often, "ocelot ocelot ocelot, all about the ocelot")
    await _say(db, org, once, "a long message that mentions an ocelot once among many other words here")
    assert await _titles(client, h, "ocelot") == ["Often", "Once"]


async def test_the_service_for_the_console(db: AsyncSession, client: AsyncClient) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers, title="Console")
    long_text = "word " * 100 + "heron " + "tail " * 100
    await _say(db, org, conversation, long_text)
    me = Actor.for_user(org.member)
    page = await search.search_conversations(db, me, "heron", page=PageParams(page=1, per_page=10))
    assert page.total == 1
    [hit] = page.items
    assert hit.snippet[0].text == "…"
    assert hit.snippet[-1].text == "…"
    assert [p.text for p in hit.snippet if p.match] == ["heron"]
    assert len(hit.snippet_text) <= search.SNIPPET_CHARS + 2
    assert (await search.search_conversations(db, me, "")).total == 0
    # No HTML is made of a message: what looks like markup comes back as text, in parts.
    await _say(db, org, conversation, "<script>alert('heron')</script>")
    page = await search.search_conversations(db, me, "alert heron")
    assert page.items[0].snippet_text == "<script>alert('heron')</script>"
    stored = await db.scalar(
        select(Conversation.title).where(Conversation.id == uuid.UUID(conversation["id"]))
    )
    assert stored == "Console"


async def test_a_word_in_a_title_is_found_at_the_start_of_a_word(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    h = org.member_headers
    await start(client, h, title="Weather in Planning")
    assert await _titles(client, h, "the") == []  # not inside "Weather"
    assert await _titles(client, h, "plan") == ["Weather in Planning"]
    assert await _titles(client, h, "in") == ["Weather in Planning"]
    assert await _titles(client, h, "i") == []  # a short word: whole


async def test_words_in_very_many_messages_are_still_all_found(
    client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite ranks words found in more than RANKED_MAX messages by how many messages hold them.
    monkeypatch.setattr(search, "RANKED_MAX", 1)
    org = await make_org(db)
    h = org.member_headers
    once = await start(client, h, title="Once")
    await _say(db, org, once, "a heron")
    often = await start(client, h, title="Often")
    ids = await _say(db, org, often, "heron one", "heron two", "heron three")
    found = await _found(client, h, "heron")
    assert found["meta"]["total"] == 2
    assert [hit["title"] for hit in found["items"]] == ["Often", "Once"]
    assert found["items"][0]["message_id"] in {str(i) for i in ids}
    assert [p["text"] for p in found["items"][1]["snippet_parts"] if p["match"]] == ["heron"]


async def test_the_migration_indexes_the_messages_already_there(empty_database: str) -> None:
    """Migration 0016 fills the index from the messages written before it, and its downgrade
    removes the index and its triggers (the messages stay)."""
    url = empty_database
    _in_thread(upgrade, url, "0015")
    owner, conversation, message = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    statements = [
        "INSERT INTO conversations (id, created_at, account_id, user_id, model, title, pinned, archived,"
        " updated_at) VALUES (:conversation, CURRENT_TIMESTAMP, :account, :owner, 'm', 'Old', false,"
        " false, CURRENT_TIMESTAMP)",
        "INSERT INTO conversation_messages (id, created_at, account_id, conversation_id, role, content,"
        " status, model, input_tokens, output_tokens, cost_usd, credits, tool_steps) VALUES (:message,"
        " CURRENT_TIMESTAMP, :account, :conversation, 'user', 'an old capybara', 'complete', '', 0, 0,"
        " 0, 0, '[]')",
    ]
    values = {
        "account": _uuid(url, uuid.uuid4()), "owner": _uuid(url, owner),
        "conversation": _uuid(url, conversation), "message": _uuid(url, message),
    }  # fmt: skip
    # The rows alone (no account or user): foreign keys are not checked while they are written.
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as connection, connection:
            for statement in statements:
                connection.execute(statement, values)
    else:
        await _run(url, "SET LOCAL session_replication_role = replica", *statements, **values)

    _in_thread(upgrade, url, "0016")

    if url.startswith("sqlite"):
        found = "SELECT message_id FROM conversation_search WHERE conversation_search MATCH 'capybara'"
    else:
        found = (
            "SELECT message_id FROM conversation_search WHERE document @@ to_tsquery('simple', 'capybara')"
        )
    assert [uuid.UUID(str(row[0])) for row in await _run(url, found)] == [message]

    _in_thread(command.downgrade, alembic_config(url), "0015")
    assert await _run(url, "SELECT content FROM conversation_messages") == [("an old capybara",)]
    _in_thread(upgrade, url, "0016")  # and again: nothing was left behind
    assert len(await _run(url, found)) == 1
