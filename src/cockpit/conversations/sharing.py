"""Reading someone else's conversation: shared read-only with a person of the same account, or
opened by an administrator to review it.

- **Sharing.** The owner shares a conversation with active people of the same account (access policy
  feature ``conversations.share``). They can read it — the conversation, its messages, an export —
  and nothing else: every change (send, rename, pin, delete, share…) still finds only the caller's
  own conversations, so a reader who tries one gets the same 404 as anyone else. Unsharing needs no
  feature (taking access back is always possible).
- **Review.** When the account allows it (``Account.conversation_review_enabled``) a person with
  ``conversations:review`` (owners and administrators) can list the account's conversations and
  read any of them. Each reading request records one review, in the same transaction: an audit
  entry ``conversation.reviewed`` naming the owner, and a row the owner sees ("Reviewed by …").
  With the setting off, another person's conversation is a 404, as for anyone else.

Another account's conversation is always a 404: nothing is revealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.conversations import repository
from cockpit.conversations import sharing_repository as sql
from cockpit.conversations.models import Conversation, ConversationReview, ConversationShare
from cockpit.kit.errors import Conflict, InvalidInput, NotFound, NotPermitted
from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.policies import service as policies
from cockpit.tenancy.service import account_by_id
from cockpit.users import service as users
from cockpit.users.models import User, UserStatus

SHARE_FEATURE = "conversations.share"
OWNER, SHARED, REVIEW = "owner", "shared", "review"
# session.info key: the conversations already recorded as reviewed by this unit of work (a request
# that reads a conversation and then its messages is one review).
_REVIEWED = "conversations_reviewed"


def _not_found() -> NotFound:
    return NotFound("conversation_not_found", "No such conversation.")


def conversation_label(conversation: Conversation) -> str:
    return conversation.title or "Untitled conversation"


async def _own(session: AsyncSession, actor: Actor, conversation_id: uuid.UUID) -> Conversation:
    """The caller's own conversation (not deleted): the only one whose shares they manage."""
    if actor.user_id is None:
        raise _not_found()
    conversation = await repository.get_own(session, actor.account_id, actor.user_id, conversation_id)
    if conversation is None or conversation.deleted_at is not None:
        raise _not_found()
    return conversation


# ---- review ----


async def review_enabled(session: AsyncSession, account_id: uuid.UUID) -> bool:
    account = await account_by_id(session, account_id)
    return bool(account is not None and account.conversation_review_enabled)


async def may_review(session: AsyncSession, actor: Actor) -> bool:
    """Whether the caller may review the account's conversations now (permission and setting)."""
    if actor.user_id is None or not actor.can(Permission.conversations_review):
        return False
    return await review_enabled(session, actor.account_id)


async def _record_review(session: AsyncSession, actor: Actor, conversation: Conversation) -> None:
    reviewed: set[uuid.UUID] = session.info.setdefault(_REVIEWED, set())
    if conversation.id in reviewed:
        return
    reviewed.add(conversation.id)
    owner = await users.get_user(session, conversation.account_id, conversation.user_id)
    session.add(
        ConversationReview(
            id=uuid.uuid4(),
            account_id=conversation.account_id,
            conversation_id=conversation.id,
            reviewer_id=actor.user_id,
        )
    )
    await audit.record(
        session,
        actor,
        "conversation.reviewed",
        target=Target("conversation", conversation.id, conversation_label(conversation)),
        after={"owner_id": conversation.user_id, "owner": owner.email if owner else None},
    )


async def other_access(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> tuple[Conversation, str] | None:
    """Read access to a conversation that is not the caller's: ``"shared"`` (shared with them) or
    ``"review"`` (recorded as a review); None when they have none. Deleted conversations and other
    accounts' are never readable this way."""
    if actor.user_id is None:
        return None
    conversation = await sql.get_in_account(session, actor.account_id, conversation_id)
    if conversation is None or conversation.deleted_at is not None or conversation.user_id == actor.user_id:
        return None
    if await sql.share_of(session, conversation.id, actor.user_id) is not None:
        return conversation, SHARED
    if await may_review(session, actor):
        await _record_review(session, actor, conversation)
        return conversation, REVIEW
    return None


async def shared_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> Conversation:
    """A conversation shared with the caller (not deleted); NotFound otherwise. Never a review."""
    if actor.user_id is None:
        raise _not_found()
    conversation = await sql.get_in_account(session, actor.account_id, conversation_id)
    if conversation is None or conversation.deleted_at is not None:
        raise _not_found()
    if await sql.share_of(session, conversation.id, actor.user_id) is None:
        raise _not_found()
    return conversation


async def _require_review(session: AsyncSession, actor: Actor) -> None:
    actor.require(Permission.conversations_review)
    if not await review_enabled(session, actor.account_id):
        raise NotPermitted(
            "conversation_review_off",
            "Conversation review is turned off for this organisation (Organisation settings).",
        )


async def conversations_to_review(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: uuid.UUID | None = None,
    search: str | None = None,
    page: PageParams | None = None,
) -> Page[Conversation]:
    """The account's conversations (not deleted; one person's with ``user_id``; ``search`` in
    titles), the latest activity first. Listing records no review: opening one does."""
    await _require_review(session, actor)
    stmt = sql.account_stmt(actor.account_id, user_id=user_id, search=(search or "").strip() or None)
    return await paginate(session, stmt, page or PageParams())


async def reviews_of(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, page: PageParams | None = None
) -> Page[ConversationReview]:
    """For the owner: who reviewed the conversation and when, the latest first."""
    conversation = await _own(session, actor, conversation_id)
    return await paginate(session, sql.reviews_stmt(conversation.id), page or PageParams())


# ---- sharing ----


async def shares_of(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID
) -> list[ConversationShare]:
    """The people the caller's conversation is shared with, in the order it was shared."""
    conversation = await _own(session, actor, conversation_id)
    return await sql.shares_of(session, conversation.id)


def _unknown_person() -> InvalidInput:
    message = "There is no active person of your organisation with this id."
    return InvalidInput("unknown_user", message, details=[{"field": "user_id", "message": message}])


async def share_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> ConversationShare:
    """Let an active person of the same account read the caller's conversation. Another account's
    person, an unknown or deactivated one is the same 422 (nothing revealed)."""
    conversation = await _own(session, actor, conversation_id)
    await policies.require_feature(session, actor, SHARE_FEATURE)
    person = await users.get_user(session, actor.account_id, user_id)
    if person is None or person.status is not UserStatus.active:
        raise _unknown_person()
    if person.id == conversation.user_id:
        raise InvalidInput(
            "share_with_owner",
            "The conversation is yours already: choose someone else.",
            details=[{"field": "user_id", "message": "the owner"}],
        )
    if await sql.share_of(session, conversation.id, person.id) is not None:
        raise Conflict("already_shared", f"The conversation is already shared with {person.display_name}.")
    share = ConversationShare(
        id=uuid.uuid4(),
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        user_id=person.id,
        shared_by=actor.user_id,
    )
    session.add(share)
    await session.flush()
    await audit.record(
        session, actor, "conversation.shared",
        target=Target("conversation", conversation.id, conversation_label(conversation)),
        after={"user_id": person.id, "user": person.email},
    )  # fmt: skip
    return share


async def unshare_conversation(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    conversation = await _own(session, actor, conversation_id)
    share = await sql.share_of(session, conversation.id, user_id)
    if share is None:
        raise NotFound("share_not_found", "The conversation is not shared with this person.")
    person = await users.get_user(session, actor.account_id, user_id)
    await session.delete(share)
    await session.flush()
    await audit.record(
        session, actor, "conversation.unshared",
        target=Target("conversation", conversation.id, conversation_label(conversation)),
        before={"user_id": user_id, "user": person.email if person else None},
    )  # fmt: skip


async def shared_with_me(
    session: AsyncSession, actor: Actor, *, search: str | None = None, page: PageParams | None = None
) -> Page[Conversation]:
    """The conversations others of the account shared with the caller, the latest activity first."""
    params = page or PageParams()
    if actor.user_id is None:
        return Page(items=[], total=0, page=params.page, per_page=params.per_page)
    stmt = sql.shared_with_stmt(actor.account_id, actor.user_id, search=(search or "").strip() or None)
    return await paginate(session, stmt, params)


async def people_of(
    session: AsyncSession, actor: Actor, ids: Sequence[uuid.UUID | None]
) -> dict[uuid.UUID, User]:
    """These people of the caller's account by id (for names on pages and in the API)."""
    wanted = {i for i in ids if i is not None}
    return await users.users_by_id(session, actor.account_id, wanted) if wanted else {}


async def people_to_share_with(
    session: AsyncSession, actor: Actor, conversation_id: uuid.UUID, *, search: str = "", limit: int = 50
) -> list[User]:
    """Active people of the account the caller's conversation could be shared with (not the owner,
    not those who have it already), by name; ``search`` in names and e-mails."""
    conversation = await _own(session, actor, conversation_id)
    taken = {s.user_id for s in await sql.shares_of(session, conversation.id)} | {conversation.user_id}
    needle = search.strip().lower()
    found: list[User] = []
    for person in await users.list_all(session, actor.account_id, by_name=True, limit=5000):
        if person.status is not UserStatus.active or person.id in taken:
            continue
        if needle and needle not in person.name.lower() and needle not in person.email.lower():
            continue
        found.append(person)
        if len(found) >= limit:
            break
    return found
