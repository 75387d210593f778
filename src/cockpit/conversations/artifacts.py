"""Artifacts: the code and documents that answers produce, kept apart from the conversation so that
a person finds, previews and downloads them — in one conversation or across all of theirs.

When an answer is kept (``service.add_assistant_message``), ``collect`` takes from it:

- each fenced code block of at least CODE_MIN_LINES lines. Its name is the file name the answer
  gives it — in the fence (```` ```python title="app.py" ````, ```` ```python:app.py ````) or on the
  line just before (``Save this as `app.py`:``) — or else "<language> snippet N";
- the whole answer as a *document* when it is a long Markdown document: at least DOCUMENT_MIN_LINES
  lines, a heading on its first line, and mostly prose (conservative: a chatty answer is not one);
- files that tools return: not yet — a tool's result reaches the conversation as text only (the
  agent's tool steps keep the arguments and the outcome, not the result).

An answer later in the same conversation that produces an artifact of the same name makes a new
version of it (``version`` + 1, the same ``lineage_id``); the same content again makes nothing.
An unnamed snippet is always a new artifact. Artifacts are text, shown escaped and downloaded as
attachments (see ``files.download_headers``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import file_repository as repository
from cockpit.conversations import service
from cockpit.conversations.files import safe_name
from cockpit.conversations.models import (
    ArtifactKind,
    Conversation,
    ConversationArtifact,
    ConversationMessage,
    MessageStatus,
)
from cockpit.kit.errors import NotFound
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.kit.text import storable
from cockpit.kit.time import utcnow

CODE_MIN_LINES = 5
DOCUMENT_MIN_LINES = 30
CONTENT_MAX = 500_000  # characters: a larger block is not kept as an artifact
PER_ANSWER_MAX = 20

# Extension -> (language, media type). The media type is what a download says (HTML-like types are
# sent as plain text, see files.served_type).
_BY_EXTENSION: dict[str, tuple[str, str]] = {
    ".py": ("python", "text/x-python"), ".js": ("javascript", "text/javascript"),
    ".mjs": ("javascript", "text/javascript"), ".ts": ("typescript", "text/x-typescript"),
    ".tsx": ("tsx", "text/x-typescript"), ".jsx": ("jsx", "text/javascript"),
    ".json": ("json", "application/json"), ".md": ("markdown", "text/markdown"),
    ".csv": ("csv", "text/csv"), ".txt": ("text", "text/plain"), ".html": ("html", "text/html"),
    ".css": ("css", "text/css"), ".sql": ("sql", "application/sql"), ".sh": ("bash", "text/x-shellscript"),
    ".yaml": ("yaml", "application/yaml"), ".yml": ("yaml", "application/yaml"),
    ".toml": ("toml", "application/toml"), ".ini": ("ini", "text/plain"), ".go": ("go", "text/x-go"),
    ".rs": ("rust", "text/x-rust"), ".java": ("java", "text/x-java"), ".kt": ("kotlin", "text/x-kotlin"),
    ".c": ("c", "text/x-c"), ".h": ("c", "text/x-c"), ".cpp": ("cpp", "text/x-c++"),
    ".hpp": ("cpp", "text/x-c++"), ".cs": ("csharp", "text/x-csharp"), ".rb": ("ruby", "text/x-ruby"),
    ".php": ("php", "text/x-php"), ".swift": ("swift", "text/x-swift"), ".r": ("r", "text/x-r"),
    ".xml": ("xml", "application/xml"), ".svg": ("svg", "image/svg+xml"),
}  # fmt: skip
_NAMES_WITHOUT_EXTENSION = frozenset({"Dockerfile", "Makefile", "Procfile", "Gemfile", "Jenkinsfile"})
_LANGUAGE_EXTENSION = {language: ext for ext, (language, _) in reversed(_BY_EXTENSION.items())} | {
    "py": ".py", "js": ".js", "ts": ".ts", "sh": ".sh", "shell": ".sh", "yml": ".yaml", "md": ".md",
}  # fmt: skip

_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_ATTRIBUTE = re.compile(r"""\b(?:title|filename|file|name)\s*=\s*(?:"([^"]+)"|'([^']+)'|(\S+))""")
_FILE_TOKEN = re.compile(r"`([^`\s]+)`|([\w./\\-]+)")
_HEADING = re.compile(r"^#{1,2}\s+(\S.*?)\s*#*\s*$")


@dataclass
class Found:
    name: str
    named: bool  # the answer named it (a later one of the same name is a new version)
    kind: ArtifactKind
    language: str
    media_type: str
    content: str


def _file_name(token: str) -> str | None:
    """``token`` as a file name when it looks like one (a known extension, or a Dockerfile...)."""
    base = re.split(r"[/\\]", token.strip().strip("\"'()[]{}<>,;:*"))[-1]
    if base in _NAMES_WITHOUT_EXTENSION:
        return base
    suffix = PurePosixPath(base).suffix.lower()
    if suffix in _BY_EXTENSION and len(base) > len(suffix) and re.fullmatch(r"[\w. ()-]+", base):
        return base
    return None


def _named_in(info: str) -> tuple[str, str | None]:
    """The fence's language and the file name it gives, if any."""
    name: str | None = None
    attribute = _ATTRIBUTE.search(info)
    if attribute is not None:
        name = _file_name(next(g for g in attribute.groups() if g))
        info = info[: attribute.start()] + info[attribute.end() :]
    tokens = info.split()
    language = tokens[0] if tokens else ""
    if ":" in language:  # ```python:src/app.py
        language, _, path = language.partition(":")
        name = name or _file_name(path)
    elif language and name is None and _file_name(language):  # ```app.py
        name, language = _file_name(language), ""
    for token in tokens[1:]:
        name = name or _file_name(token)
    return language.lower()[:50], name


def _named_before(lines: list[str], index: int) -> str | None:
    """A file name on the last non-empty line before the fence (the first one it mentions)."""
    for line in reversed(lines[max(0, index - 2) : index]):
        if line.strip():
            for quoted, bare in _FILE_TOKEN.findall(line):
                name = _file_name(quoted or bare)
                if name is not None:
                    return name
            return None
    return None


def _kind_of(name: str | None, language: str) -> tuple[str, str]:
    """The language and media type of a block."""
    if name is not None:
        by_name = _BY_EXTENSION.get(PurePosixPath(name).suffix.lower())
        if by_name is not None:
            return language or by_name[0], by_name[1]
    extension = _LANGUAGE_EXTENSION.get(language)
    return language, _BY_EXTENSION[extension][1] if extension else "text/plain"


def find_artifacts(content: str) -> list[Found]:
    """The artifacts of an answer's text (see the module's docstring)."""
    lines = content.splitlines()
    found: list[Found] = []
    in_code = 0
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence, close = opening["fence"], None
        for end in range(index + 1, len(lines)):
            closing = _FENCE.match(lines[end])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                close = end
                break
        if close is None:  # never closed (a stopped answer): not a finished block
            break
        body = lines[index + 1 : close]
        in_code += len(body) + 2
        if len(body) >= CODE_MIN_LINES:
            language, name = _named_in(opening["info"])
            name = name or _named_before(lines, index)
            language, media_type = _kind_of(name, language)
            found.append(Found(name or "", name is not None, ArtifactKind.code, language, media_type,
                               "\n".join(body) + "\n"))  # fmt: skip
        index = close + 1
    first = next((line for line in lines if line.strip()), "")
    heading = _HEADING.match(first.strip())
    if heading and len(lines) >= DOCUMENT_MIN_LINES and in_code * 2 < len(lines):
        title = safe_name(heading[1])
        found.append(Found(title, True, ArtifactKind.document, "markdown", "text/markdown", content))
    return [f for f in found if len(f.content) <= CONTENT_MAX][:PER_ANSWER_MAX]


def _digest(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


async def collect(
    session: AsyncSession, conversation: Conversation, message: ConversationMessage
) -> list[ConversationArtifact]:
    """Keep the artifacts of an answer just kept (a complete one: a stopped or failed answer's code
    may be cut short). Called by ``service.add_assistant_message``, which has checked the access."""
    if message.status is not MessageStatus.complete:
        return []
    found = find_artifacts(message.content)
    if not found:
        return []
    names = {f.name for f in found if f.named}
    previous = await repository.latest_named(session, conversation.account_id, conversation.id, names)
    count = await repository.lineage_count(session, conversation.account_id, conversation.id)
    kept: list[ConversationArtifact] = []
    now = utcnow()
    for f in found:
        content = storable(f.content)
        digest = _digest(content)
        before = previous.get(f.name) if f.named else None
        if before is not None and before.sha256 == digest:
            continue  # the same again (a regenerated answer): nothing new
        if not f.named:
            count += 1
            f.name = f"{f.language or 'code'} snippet {count}"
        artifact_id = uuid.uuid4()
        artifact = ConversationArtifact(
            id=artifact_id,
            account_id=conversation.account_id,
            conversation_id=conversation.id,
            message_id=message.id,
            lineage_id=before.lineage_id if before is not None else artifact_id,
            version=before.version + 1 if before is not None else 1,
            latest=True,
            name=safe_name(f.name),
            kind=f.kind,
            media_type=f.media_type,
            language=storable(f.language)[:50],
            size=len(content.encode("utf-8")),
            sha256=digest,
            content=content,
            created_at=now,
        )
        if before is not None:
            before.latest = False
        elif f.named:
            count += 1
        previous[f.name] = artifact
        session.add(artifact)
        kept.append(artifact)
    await session.flush()
    return kept


# ---- reading ----


def _not_found() -> NotFound:
    return NotFound("artifact_not_found", "No such artifact.")


async def list_artifacts(
    session: AsyncSession,
    actor: Actor,
    *,
    conversation_id: uuid.UUID | None = None,
    kind: ArtifactKind | None = None,
    page: PageParams | None = None,
) -> Page[ConversationArtifact]:
    """The latest version of each artifact of the caller's conversations (or of one of them), the
    newest first."""
    params = page or PageParams()
    if conversation_id is not None:
        await service.access_conversation(session, actor, conversation_id)
    if actor.user_id is None:
        return Page(items=[], total=0, page=params.page, per_page=params.per_page)
    stmt = repository.artifacts_stmt(
        actor.account_id, actor.user_id, conversation_id=conversation_id, kind=kind
    )
    return await paginate(session, stmt, params)


async def get_artifact(session: AsyncSession, actor: Actor, artifact_id: uuid.UUID) -> ConversationArtifact:
    """An artifact (any version) of the caller's own conversations; NotFound for anyone else's."""
    if actor.user_id is None:
        raise _not_found()
    found = await repository.get_own_artifact(session, actor.account_id, actor.user_id, artifact_id)
    if found is None:
        raise _not_found()
    return found


async def artifact_versions(
    session: AsyncSession, actor: Actor, artifact_id: uuid.UUID
) -> list[ConversationArtifact]:
    """Every version of the artifact, the latest first."""
    artifact = await get_artifact(session, actor, artifact_id)
    return await repository.versions_of(session, actor.account_id, artifact.lineage_id)


async def conversation_titles(
    session: AsyncSession, actor: Actor, conversation_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The titles of these conversations of the caller ("" when untitled), by id."""
    if actor.user_id is None:
        return {}
    return await repository.conversation_titles(session, actor.account_id, actor.user_id, conversation_ids)


def download_name(artifact: ConversationArtifact) -> str:
    """The artifact's name with an extension for its type (a document: ``.md``)."""
    if PurePosixPath(artifact.name).suffix or artifact.name in _NAMES_WITHOUT_EXTENSION:
        return artifact.name
    extension = _LANGUAGE_EXTENSION.get(artifact.language, ".txt")
    return f"{artifact.name}{extension}"
