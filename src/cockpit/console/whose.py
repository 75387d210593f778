"""Whose statement a page shows (the credits statement, the usage statement): the account, a group
or a member, from the picker (``scope=group:<id>``) or a link (``group_id=<id>``), and what the
picker lists. Who may see which statement is the services' to decide."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from cockpit.console.web import Viewer
from cockpit.groups import service as groups_service
from cockpit.groups.models import Group
from cockpit.kit.errors import InvalidInput, NotFound
from cockpit.kit.web import DbSession
from cockpit.users import service as users
from cockpit.users.models import User

# The picker lists this many members; any member's statement stays reachable by its link.
MAX_MEMBERS_LISTED = 500


@dataclass(frozen=True)
class Who:
    user_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None

    @property
    def key(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.group_id is not None:
            return f"group:{self.group_id}"
        return "account"

    def params(self) -> dict[str, str]:
        if self.user_id is not None:
            return {"user_id": str(self.user_id)}
        if self.group_id is not None:
            return {"group_id": str(self.group_id)}
        return {}


def id_of(value: str, what: str) -> uuid.UUID:
    """An id from a query string; one that is not even an id names nothing (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"{what}_not_found", f"No such {what}.") from None


def who_of(scope: str, user_id: str, group_id: str) -> Who:
    if scope:
        kind, _, value = scope.partition(":")
        if kind == "account" and not value:
            return Who()
        if kind in ("user", "group") and value:
            user_id, group_id = (value, "") if kind == "user" else ("", value)
        else:
            raise NotFound("statement_not_found", "No such statement.")
    if user_id and group_id:
        raise InvalidInput(
            "invalid_input",
            "Give a member or a group, not both.",
            details=[{"field": "group_id", "message": "give user_id or group_id, not both"}],
        )
    return Who(
        user_id=id_of(user_id, "user") if user_id else None,
        group_id=id_of(group_id, "group") if group_id else None,
    )


@dataclass
class Picker:
    """The statement's subject (None: the account) and, for administrators, what they may pick."""

    subject: Group | User | None = None
    groups: list[Group] = field(default_factory=list)
    members: list[User] = field(default_factory=list)
    more_members: bool = False

    def title(self, viewer: Viewer) -> str:
        if isinstance(self.subject, Group):
            return f"Group {self.subject.name}"
        if isinstance(self.subject, User):
            return "You" if self.subject.id == viewer.actor.user_id else self.subject.display_name
        return viewer.account.name


async def picker(
    session: DbSession, viewer: Viewer, *, admin: bool, user_id: uuid.UUID | None, group_id: uuid.UUID | None
) -> Picker:
    """The subject of the statement shown (its group or member) and, for administrators, the groups
    and the first ``MAX_MEMBERS_LISTED`` members by name (with the subject among them)."""
    found = Picker()
    account_id = viewer.actor.account_id
    if group_id is not None:
        found.subject = await groups_service.get_group(session, account_id, group_id)
    elif user_id is not None:
        found.subject = await users.get_user(session, account_id, user_id)
    if admin:
        found.groups = list(await groups_service.groups_of(session, account_id))
        listed = await users.list_all(session, account_id, by_name=True, limit=MAX_MEMBERS_LISTED + 1)
        found.more_members = len(listed) > MAX_MEMBERS_LISTED
        found.members = list(listed[:MAX_MEMBERS_LISTED])
        if isinstance(found.subject, User) and found.subject not in found.members:
            found.members.append(found.subject)
    return found
