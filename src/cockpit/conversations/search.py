"""Full-text search over a person's own conversations: their titles and their messages' contents.

The words the person types are never handed to the database's query language as they are: each word
(a run of letters and digits) becomes a quoted term, matched as a prefix from 3 characters on, and
every word must appear (AND). Quotes, ``*``, ``NEAR(``, ``AND``/``OR``, ``-``, ``:`` and the like are
therefore either separators or plain words, and cannot break or widen a query. Text that cannot be
stored (NUL, a lone surrogate) and queries longer than ``QUERY_MAX`` are refused (422).

Messages are found through the ``conversation_search`` index (migration 0016: FTS5 on SQLite, a
GIN-indexed ``tsvector`` on PostgreSQL) which carries the owner of each message as a term, so the
index itself is asked for "the caller's messages with these words". The result is then joined with
``conversations`` on the caller's account, the caller as owner and ``deleted_at IS NULL``: the
owner term is only an accelerator, the join is what makes another person's or a deleted
conversation unfindable. Titles (a person has few conversations) are matched with LIKE, each word
at the start of a word of the title (after a space), as in messages.

One result per conversation: its best-matching message (if any) with a short snippet, titles that
match first, then the most relevant, then the latest activity. Snippets are plain text cut into
parts, each part flagged when it is a matching word, so that a page escapes every part and marks
the matches itself: nothing from a message is ever HTML.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, TextualSelect, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from cockpit.agents import service as agents
from cockpit.authz.actor import Actor
from cockpit.conversations.models import ConversationMessage
from cockpit.kit.db import UTCDateTime
from cockpit.kit.errors import InvalidInput
from cockpit.kit.pagination import Page, PageParams
from cockpit.kit.sql import LIKE_ESCAPE
from cockpit.kit.text import is_storable

QUERY_MAX = 200  # characters of a query
WORDS_MAX = 8  # words of a query used (the rest are ignored)
WORD_MAX = 64  # characters of a word used (a longer one is cut: still a prefix of itself)
PREFIX_MIN = 3  # a shorter word is matched exactly: "a"* would expand to every word starting with a
SNIPPET_CHARS = 160

# A word as both indexes see it: letters and digits (``_`` and punctuation separate words).
_WORD = re.compile(r"[^\W_]+")
_SPACES = re.compile(r"\s+")


# ---- the query ----


def words_of(query: str) -> list[str]:
    """The words searched for (lower case, in order, without repeats, at most WORDS_MAX)."""
    found: list[str] = []
    for word in _WORD.findall(query.lower()):
        word = word[:WORD_MAX]
        if word not in found:
            found.append(word)
    return found[:WORDS_MAX]


def _checked(query: str) -> str:
    def invalid(message: str) -> InvalidInput:
        return InvalidInput("invalid_query", message, details=[{"field": "q", "message": message}])

    if not is_storable(query):
        reason = "a NUL character" if "\x00" in query else "invalid Unicode"
        raise invalid(f"The search contains {reason}: remove it and try again.")
    if len(query) > QUERY_MAX:
        raise invalid(f"A search has at most {QUERY_MAX} characters.")
    return query


def _fts5_query(owner: uuid.UUID, words: list[str]) -> str:
    """An FTS5 query: the owner's term, then each word quoted (a prefix from PREFIX_MIN characters).
    A word holds letters and digits only, so the quotes cannot be closed early."""
    terms = " ".join(f'"{w}"*' if len(w) >= PREFIX_MIN else f'"{w}"' for w in words)
    return f'owner : "{owner.hex}" AND body : ({terms})'


def _tsquery_words(words: list[str]) -> str:
    """The input of PostgreSQL's ``to_tsquery``: each word quoted (letters and digits only), ANDed."""
    return " & ".join(f"'{w}':*" if len(w) >= PREFIX_MIN else f"'{w}'" for w in words)


# ---- the SQL ----

# The conversations found: the caller's own, not deleted, with a message hit (``hits``: one row per
# conversation, its best message) or a title with every word.
_FOUND = """
found AS (
    SELECT c.id AS id, c.title AS title, c.agent_id AS agent_id, c.model AS model,
           c.archived AS archived, c.created_at AS created_at, c.updated_at AS updated_at,
           hits.mid AS message_id, COALESCE(hits.relevance, 0) AS relevance,
           CASE WHEN {title_match} THEN 1 ELSE 0 END AS in_title
    FROM conversations c LEFT JOIN hits ON hits.cid = c.id
    WHERE c.account_id = :account AND c.user_id = :user AND c.deleted_at IS NULL
      AND (hits.cid IS NOT NULL OR ({title_match}))
)
SELECT id, title, agent_id, model, archived, created_at, updated_at, message_id, in_title,
       count(*) OVER () AS total
FROM found
ORDER BY in_title DESC, relevance DESC, updated_at DESC, id
LIMIT :limit OFFSET :offset
"""

# SQLite: bm25 is lower for better matches (the owner and id columns weigh nothing); the best
# message of each conversation is the row of max(-bm25) (SQLite returns that row's other columns).
# MATERIALIZED: bm25 can only be computed in the query that matches, not in the aggregate.
_SQLITE_HITS = """
WITH matched AS MATERIALIZED (
    SELECT conversation_id AS cid, message_id AS mid,
           -bm25(conversation_search, 0.0, 0.0, 0.0, 1.0) AS relevance
    FROM conversation_search WHERE conversation_search MATCH :match
),
hits AS (SELECT cid, max(relevance) AS relevance, mid FROM matched GROUP BY cid),
"""

# SQLite, when the words are in more than RANKED_MAX of the person's messages: BM25 for each of
# them would cost more than the rest of the search (it reads every matching row's statistics), and
# tells little apart (such words are in most messages). A conversation's relevance is then how
# many of its messages hold the words; its best message, the latest of them.
_SQLITE_COMMON_HITS = """
WITH matched AS MATERIALIZED (
    SELECT rowid AS rid, conversation_id AS cid, message_id AS mid
    FROM conversation_search WHERE conversation_search MATCH :match
),
hits AS (SELECT cid, count(*) AS relevance, mid, max(rid) AS latest FROM matched GROUP BY cid),
"""
RANKED_MAX = 5_000

_POSTGRESQL_HITS = """
WITH hits AS (
    SELECT DISTINCT ON (s.conversation_id) s.conversation_id AS cid, s.message_id AS mid,
           ts_rank(s.document, CAST(:words AS tsquery)) AS relevance
    FROM conversation_search s
    WHERE s.document @@ CAST(:match AS tsquery)
    ORDER BY s.conversation_id, relevance DESC, s.message_id
),
"""


def _statement(dialect: str, title_words: int, *, common: bool = False) -> TextualSelect:
    # Each word at the start of a word of the title (after a space), as in messages.
    title_match = " AND ".join(
        f"(' ' || lower(c.title) || ' ') LIKE :title{i} ESCAPE '{LIKE_ESCAPE}'" for i in range(title_words)
    )
    hits = {"postgresql": _POSTGRESQL_HITS}.get(dialect, _SQLITE_COMMON_HITS if common else _SQLITE_HITS)
    stmt = text(hits + _FOUND.format(title_match=title_match or "1 = 0"))
    return stmt.bindparams(bindparam("account", type_=Uuid()), bindparam("user", type_=Uuid())).columns(
        id=Uuid(),
        agent_id=Uuid(),
        message_id=Uuid(),
        created_at=UTCDateTime(),
        updated_at=UTCDateTime(),
    )


def _title_pattern(word: str) -> str:
    """A LIKE pattern of a word at the start of a word of ``" " + title + " "`` (a whole word when short)."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"% {escaped}%" if len(word) >= PREFIX_MIN else f"% {escaped} %"


async def _postgresql_words(session: AsyncSession, words: list[str]) -> str:
    """The words as PostgreSQL's parser reads them (the same parser as the documents'), as a
    ``tsquery`` text; empty when no word is left."""
    found = await session.scalar(text("SELECT to_tsquery('simple', :q)::text"), {"q": _tsquery_words(words)})
    return str(found or "")


# ---- the results ----


@dataclass(frozen=True)
class SnippetPart:
    text: str
    match: bool  # a word of the search: to be marked (after escaping, like every part)


@dataclass(frozen=True)
class SearchHit:
    """A conversation found, with its best-matching message (``message_id`` None: only its title
    matched) and a snippet of that message (or of the title)."""

    conversation_id: uuid.UUID
    title: str
    agent_id: uuid.UUID | None
    agent: str | None  # the agent's name (None: a bare model, or a deleted agent)
    model: str
    archived: bool
    in_title: bool
    message_id: uuid.UUID | None
    message_role: str | None
    snippet: list[SnippetPart]
    created_at: datetime
    updated_at: datetime

    @property
    def snippet_text(self) -> str:
        return "".join(part.text for part in self.snippet)


def _fold(text: str) -> str:
    """Lower case without diacritics (as SQLite's index compares words)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _matches(word: str, folded_words: list[str]) -> bool:
    folded = _fold(word)
    return any(folded.startswith(w) if len(w) >= PREFIX_MIN else folded == w for w in folded_words)


def snippet_of(content: str, words: list[str], *, size: int = SNIPPET_CHARS) -> list[SnippetPart]:
    """About ``size`` characters of ``content`` around its first matching word (whitespace made
    single spaces, "…" where it is cut), in parts: the matching words flagged."""
    folded_words = [_fold(w) for w in words]
    spans = [m.span() for m in _WORD.finditer(content) if _matches(m.group(), folded_words)]
    first = spans[0][0] if spans else 0
    start = max(0, first - size // 3)
    if start > 0:  # begin at a word
        space = content.find(" ", start, first)
        start = space + 1 if space != -1 else start
    end = min(len(content), start + size)
    if end < len(content):
        space = content.rfind(" ", max(first + 1, start + size // 2), end)
        end = space if space != -1 else end
    parts: list[SnippetPart] = []
    if start > 0:
        parts.append(SnippetPart("…", False))
    cursor = start
    for s, e in spans:
        if s < start or s >= end:
            continue
        e = min(e, end)
        if s > cursor:
            parts.append(SnippetPart(content[cursor:s], False))
        parts.append(SnippetPart(content[s:e], True))
        cursor = e
    if cursor < end:
        parts.append(SnippetPart(content[cursor:end], False))
    if end < len(content):
        parts.append(SnippetPart("…", False))
    return [SnippetPart(_SPACES.sub(" ", p.text), p.match) for p in parts if p.text]


async def search_conversations(
    session: AsyncSession, actor: Actor, q: str, *, page: PageParams | None = None
) -> Page[SearchHit]:
    """The caller's own conversations (of their account; deleted ones never, archived ones flagged)
    whose title or messages contain every word of ``q``: titles that match first, then the most
    relevant message, then the latest activity; paged. A query without words finds nothing;
    InvalidInput (422) for text that cannot be stored or longer than QUERY_MAX characters."""
    params = page or PageParams()
    empty: Page[SearchHit] = Page(items=[], total=0, page=params.page, per_page=params.per_page)
    words = words_of(_checked(q))
    if actor.user_id is None or not words:
        return empty
    dialect = session.get_bind().dialect.name
    values: dict[str, object] = {
        "account": actor.account_id,
        "user": actor.user_id,
        "limit": params.per_page,
        "offset": params.offset,
    }
    for i, word in enumerate(words):
        values[f"title{i}"] = _title_pattern(word)
    common = False
    if dialect == "postgresql":
        tsquery = await _postgresql_words(session, words)
        if not tsquery:
            return empty
        values["words"] = tsquery
        values["match"] = f"({tsquery}) & '~{actor.user_id}'"
    else:
        values["match"] = _fts5_query(actor.user_id, words)
        # Counting the matches reads the index only (a few ms for tens of thousands).
        matches = await session.scalar(
            text("SELECT count(*) FROM conversation_search WHERE conversation_search MATCH :match"),
            {"match": values["match"]},
        )
        common = (matches or 0) > RANKED_MAX
    statement = _statement(dialect, len(words), common=common)
    rows = (await session.execute(statement, values)).mappings().all()
    total = int(rows[0]["total"]) if rows else 0
    if not rows and params.offset:  # past the last page: count what there is
        counted = await session.execute(statement, {**values, "limit": 1, "offset": 0})
        first = counted.mappings().first()
        total = int(first["total"]) if first else 0
    return Page(items=await _hits(session, actor, rows, words), total=total, page=params.page,
                per_page=params.per_page)  # fmt: skip


async def _hits(
    session: AsyncSession, actor: Actor, rows: Sequence[RowMapping], words: list[str]
) -> list[SearchHit]:
    found = list(rows)
    message_ids = [r["message_id"] for r in found if r["message_id"] is not None]
    messages: dict[uuid.UUID, tuple[str, str]] = {}
    if message_ids:
        result = await session.execute(
            select(ConversationMessage.id, ConversationMessage.content, ConversationMessage.role).where(
                ConversationMessage.account_id == actor.account_id,
                ConversationMessage.id.in_(message_ids),
            )
        )
        messages = {mid: (content, str(role)) for mid, content, role in result.all()}
    agent_ids = {str(r["agent_id"]) for r in found if r["agent_id"] is not None}
    names = await agents.names_of(session, actor.account_id, agent_ids) if agent_ids else {}
    hits: list[SearchHit] = []
    for r in found:
        message = messages.get(r["message_id"]) if r["message_id"] is not None else None
        source = message[0] if message is not None else r["title"]
        hits.append(
            SearchHit(
                conversation_id=r["id"],
                title=r["title"],
                agent_id=r["agent_id"],
                agent=names.get(str(r["agent_id"])) if r["agent_id"] is not None else None,
                model=r["model"],
                archived=bool(r["archived"]),
                in_title=bool(r["in_title"]),
                message_id=r["message_id"] if message is not None else None,
                message_role=message[1] if message is not None else None,
                snippet=snippet_of(source, words),
                created_at=r["created_at"],
                updated_at=r["updated_at"],
            )
        )
    return hits
