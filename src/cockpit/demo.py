"""The demo organisation `make demo` serves: idempotent, so a second run reuses it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.accounts.service import create_account
from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.actor import Actor
from cockpit.auth.passwords import hash_password
from cockpit.config import Settings
from cockpit.groups import service as groups
from cockpit.invitations import service as invitations
from cockpit.projects import service as projects
from cockpit.projects.models import ProjectRole
from cockpit.users import repository as users_repo
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.seats import SeatProduct, set_user_seats

DEMO_ORG = "Acme Robotics (demo)"
DEMO_EMAIL = "owner@acme.example.com"
DEMO_PASSWORD = "cockpit-demo-2026"  # noqa: S105 - a published demo login, not a secret
DOMAIN = "acme.example.com"

GROUPS = {
    "Engineering": "Product and platform engineers",
    "Sales": "Account executives and sales engineering",
    "Support": "Customer support and success",
    "Finance": "Finance, legal and procurement",
}
FIRST = ["Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances",
         "Edsger", "Radia", "Donald", "Hedy", "John", "Shafi", "Tim", "Sophie", "Guido", "Anita",
         "Bjarne", "Lynn", "Niklaus", "Joan", "Leslie", "Mary", "Vint", "Adele", "Yukihiro", "Jean",
         "Brian", "Carol", "James", "Evelyn", "Robin", "Ivan", "Hal", "Marissa", "Larry"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
        "Allen", "Dijkstra", "Perlman", "Knuth", "Lamarr", "McCarthy", "Goldwasser", "Berners-Lee", "Wilson",
        "van Rossum", "Borg", "Stroustrup", "Conway", "Wirth", "Clarke", "Lamport", "Keller", "Cerf",
        "Goldberg", "Matsumoto", "Sammet", "Kernighan", "Shaw", "Gosling", "Berezin", "Milner", "Sutherland",
        "Abelson", "Mayer", "Page"]  # fmt: skip
INVITEES = [("nina.patel", "Nina Patel", "Engineering"), ("omar.haddad", "Omar Haddad", "Sales"),
            ("lea.martin", "Léa Martin", "Support")]  # fmt: skip


@dataclass
class DemoLogin:
    email: str
    password: str
    created: bool


async def seed_demo(session: AsyncSession, settings: Settings) -> DemoLogin:
    existing = await users_repo.get_by_email(session, DEMO_EMAIL)
    if existing is not None:
        return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=False)
    account, owner = await create_account(
        session, name=DEMO_ORG, owner_email=DEMO_EMAIL, owner_password=DEMO_PASSWORD,
        owner_name="Olivia Owner", timezone="Europe/Paris", label="demo seed",
    )  # fmt: skip
    owner_actor = Actor.for_user(owner)
    account.seat_limit_copilot, account.seat_limit_console, account.seat_limit_compute = 50, 10, 20
    group_ids = [
        (await groups.create_group(session, owner_actor, name=name, description=description)).id
        for name, description in GROUPS.items()
    ]
    seed_actor = Actor.system(account.id, label="demo seed")
    password_hash = hash_password(DEMO_PASSWORD)  # one hash for every demo person: seeding stays fast
    people: list[User] = []
    for i, (first, last) in enumerate(zip(FIRST, LAST, strict=True)):
        role = UserRole.admin if i in (0, 5) else UserRole.member
        seats = [SeatProduct.copilot] + ([SeatProduct.console] if role is UserRole.admin else [])
        if i % 4 == 0:
            seats.append(SeatProduct.compute)
        email = f"{first.lower()}.{last.lower().replace(' ', '').replace('-', '')}@{DOMAIN}"
        group_id = group_ids[i % len(group_ids)] if i % 7 else owner.group_id
        user = User(id=uuid.uuid4(), account_id=account.id, email=email, name=f"{first} {last}", role=role,
                    status=UserStatus.deactivated if i in (11, 23) else UserStatus.active,
                    password_hash=password_hash, group_id=group_id)  # fmt: skip
        set_user_seats(user, seats)
        session.add(user)
        people.append(user)
        await session.flush()
        await audit.record(session, seed_actor, "user.created", target=Target("user", user.id, email),
                           after={"email": email, "role": role, "seats": seats})  # fmt: skip
    for local, name, group in INVITEES:
        await invitations.invite(
            session, owner_actor, settings, email=f"{local}@{DOMAIN}", name=name,
            group_id=group_ids[list(GROUPS).index(group)], seats=["copilot"], send=False,
        )  # fmt: skip
    assistant = await projects.create_project(
        session,
        owner_actor,
        name="Customer Assistant",
        description="The support chatbot and its knowledge base",
    )
    research = await projects.create_project(
        session, owner_actor, name="Research Lab", description="Prototypes and model evaluations"
    )
    active = [person for person in people if person.status is UserStatus.active]
    for project, members in ((assistant, active[:6]), (research, active[6:12])):
        for j, user in enumerate(members):
            project_role = ProjectRole.project_admin if j == 0 else ProjectRole.project_member
            await projects.set_member(
                session, owner_actor, project.id, user.id, role=project_role, all_assistants=j < 3
            )
    return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD, created=True)
