"""How people read in platform events and messages: a person's name (their e-mail without one), and
who did something (the acting person, or Cockpit itself for the system)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.users.models import User

SYSTEM = "Cockpit"


def person_name(user: User) -> str:
    return user.display_name


async def actor_name(session: AsyncSession, actor: Actor) -> str:
    """The acting person's name (served from the session when loaded); "Cockpit" for the system."""
    if actor.user_id is None:
        return SYSTEM if actor.label == "system" else actor.label
    user = await session.get(User, actor.user_id)
    return person_name(user) if user is not None else actor.label
