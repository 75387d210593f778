"""The demo organisation `make demo` serves: idempotent, so a second run reuses it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.models import Account
from cockpit.accounts.service import create_account
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.actor import Actor
from cockpit.auth.passwords import hash_password
from cockpit.users import repository as users_repo
from cockpit.users.models import User, UserRole, UserStatus

DEMO_ORG = "Acme Robotics (demo)"
DEMO_EMAIL = "owner@acme.example.com"
DEMO_PASSWORD = "cockpit-demo-2026"  # noqa: S105 - a published demo login, not a secret
DEMO_PEOPLE = [
    ("ada@acme.example.com", "Ada Lovelace", UserRole.admin),
    ("grace@acme.example.com", "Grace Hopper", UserRole.member),
    ("alan@acme.example.com", "Alan Turing", UserRole.member),
]


@dataclass
class DemoLogin:
    email: str
    password: str
    created: bool


async def seed_demo(session: AsyncSession) -> DemoLogin:
    existing = await users_repo.get_by_email(session, DEMO_EMAIL)
    if existing is not None:
        return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=False)
    account, _owner = await create_account(
        session,
        name=DEMO_ORG,
        owner_email=DEMO_EMAIL,
        owner_password=DEMO_PASSWORD,
        owner_name="Olivia Owner",
        timezone="Europe/Paris",
        label="demo seed",
    )
    await _add_people(session, account)
    return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=True)


async def _add_people(session: AsyncSession, account: Account) -> None:
    actor = Actor.system(account.id, label="demo seed")
    for email, name, role in DEMO_PEOPLE:
        user = User(
            account_id=account.id,
            email=email,
            name=name,
            role=role,
            status=UserStatus.active,
            password_hash=hash_password(DEMO_PASSWORD),
        )
        session.add(user)
        await session.flush()
        await audit.record(
            session,
            actor,
            "user.created",
            target=Target("user", user.id, email),
            after={"email": email, "role": role, "status": UserStatus.active},
        )
