"""Full-text search over conversation messages (SQLite FTS5, PostgreSQL full-text search).

One index table, ``conversation_search``, kept in step with ``conversation_messages`` by triggers
(every write path, the ORM's, a bulk COPY's or a purge's, updates it), and filled from the messages
already there. Each row carries the owner of the message's conversation as a term of its own, so
that a search asks the index for "the caller's messages AND these words": the index intersects
the caller's short list with the words' lists, instead of finding every person's matches and
filtering them afterwards (a common word in 1 million messages would be half a million rows).
The owner term only narrows the search: the query still joins ``conversations`` on the account, the
owner and ``deleted_at`` (see ``cockpit.conversations.search``).

- SQLite: an FTS5 table (``owner``, ``message_id``: the ids as 32 hex digits, indexed as one term
  each; ``conversation_id`` unindexed; ``body``: the text). The FTS rowid is not tied to the
  message's implicit rowid (which VACUUM may renumber): a message's row is found by its
  ``message_id`` term.
- PostgreSQL: a table of ``tsvector`` documents (``simple`` configuration: no language, no stop
  words) with a GIN index; the owner is the lexeme ``~<user id>`` (no word of the text can start
  with ``~``). ASCII punctuation is read as a space first, so that ``bob@example.com``,
  ``3.14`` or ``a/b`` are words as on SQLite (PostgreSQL's parser would keep them whole). Rows go
  with their message (a foreign key ON DELETE CASCADE).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ASCII punctuation that PostgreSQL's parser would otherwise glue words with (32 characters,
# each translated to a space). Kept in step with cockpit.conversations.search.PG_PUNCTUATION.
_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_SPACES = " " * len(_PUNCTUATION)


def _pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pg_document(content: str, user_id: str) -> str:
    return (
        f"to_tsvector('simple', translate({content}, {_pg_literal(_PUNCTUATION)}, {_pg_literal(_SPACES)}))"
        f" || array_to_tsvector(ARRAY['~' || {user_id}::text])"
    )


SQLITE_UPGRADE = [
    "CREATE VIRTUAL TABLE conversation_search USING fts5("
    " owner, message_id, conversation_id UNINDEXED, body,"
    " tokenize = 'unicode61 remove_diacritics 2', prefix = '3')",
    "CREATE TRIGGER conversation_search_insert AFTER INSERT ON conversation_messages BEGIN"
    " INSERT INTO conversation_search (owner, message_id, conversation_id, body)"
    " SELECT c.user_id, new.id, new.conversation_id, new.content FROM conversations c"
    " WHERE c.id = new.conversation_id; END",
    "CREATE TRIGGER conversation_search_update AFTER UPDATE OF content ON conversation_messages"
    " WHEN old.content IS NOT new.content BEGIN"
    " UPDATE conversation_search SET body = new.content WHERE rowid IN (SELECT rowid FROM"
    " conversation_search WHERE conversation_search MATCH 'message_id : \"' || old.id || '\"'); END",
    "CREATE TRIGGER conversation_search_delete AFTER DELETE ON conversation_messages BEGIN"
    " DELETE FROM conversation_search WHERE rowid IN (SELECT rowid FROM conversation_search"
    " WHERE conversation_search MATCH 'message_id : \"' || old.id || '\"'); END",
    "INSERT INTO conversation_search (owner, message_id, conversation_id, body)"
    " SELECT c.user_id, m.id, m.conversation_id, m.content FROM conversation_messages m"
    " JOIN conversations c ON c.id = m.conversation_id",
    "INSERT INTO conversation_search (conversation_search) VALUES ('optimize')",
]

SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS conversation_search_delete",
    "DROP TRIGGER IF EXISTS conversation_search_update",
    "DROP TRIGGER IF EXISTS conversation_search_insert",
    "DROP TABLE IF EXISTS conversation_search",
]

POSTGRESQL_UPGRADE = [
    "CREATE TABLE conversation_search ("
    " message_id uuid NOT NULL,"
    " conversation_id uuid NOT NULL,"
    " document tsvector NOT NULL,"
    " CONSTRAINT pk_conversation_search PRIMARY KEY (message_id),"
    " CONSTRAINT fk_conversation_search_message_id_conversation_messages FOREIGN KEY (message_id)"
    " REFERENCES conversation_messages (id) ON DELETE CASCADE)",
    "INSERT INTO conversation_search (message_id, conversation_id, document)"  # noqa: S608 (constants)
    f" SELECT m.id, m.conversation_id, {_pg_document('m.content', 'c.user_id')}"
    " FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id",
    "CREATE INDEX ix_conversation_search_document ON conversation_search USING gin (document)",
    "CREATE FUNCTION conversation_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"  # noqa: S608
    " INSERT INTO conversation_search (message_id, conversation_id, document)"
    f" SELECT NEW.id, NEW.conversation_id, {_pg_document('NEW.content', 'c.user_id')}"
    " FROM conversations c WHERE c.id = NEW.conversation_id"
    " ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER conversation_search_insert AFTER INSERT ON conversation_messages"
    " FOR EACH ROW EXECUTE FUNCTION conversation_search_sync()",
    "CREATE TRIGGER conversation_search_update AFTER UPDATE OF content ON conversation_messages"
    " FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content)"
    " EXECUTE FUNCTION conversation_search_sync()",
]

POSTGRESQL_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS conversation_search_update ON conversation_messages",
    "DROP TRIGGER IF EXISTS conversation_search_insert ON conversation_messages",
    "DROP FUNCTION IF EXISTS conversation_search_sync()",
    "DROP TABLE IF EXISTS conversation_search",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _run(POSTGRESQL_UPGRADE if postgresql else SQLITE_UPGRADE)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _run(POSTGRESQL_DOWNGRADE if postgresql else SQLITE_DOWNGRADE)
