"""The demo's access rules: every level, a user-level exception to a group rule, the owner unrestricted."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.demo import DEMO_EMAIL, DemoLogin
from cockpit.groups.models import Group
from cockpit.policies import service as policies
from cockpit.policies.models import AccessPolicy, ResourceType, Scope
from cockpit.users.models import User, UserRole


async def test_the_demo_has_rules_at_every_level_and_an_exception(db: AsyncSession, demo: DemoLogin) -> None:
    owner = await db.scalar(select(User).where(User.email == DEMO_EMAIL))
    assert owner is not None
    actor = Actor.for_user(owner)
    rules = list(await db.scalars(select(AccessPolicy)))
    assert {rule.scope for rule in rules} == {Scope.account, Scope.group, Scope.user}

    support = await db.scalar(select(Group).where(Group.name == "Support"))
    assert support is not None
    members = list(
        await db.scalars(
            select(User).where(User.group_id == support.id, User.role == UserRole.member).order_by(User.email)
        )
    )
    [exception] = [rule.scope_id for rule in rules if rule.scope is Scope.user]
    excepted = next(m for m in members if m.id == exception)
    other = next(m for m in members if m.id != exception)

    def claude(rows: list[policies.EffectiveRow]) -> policies.EffectiveRow:
        return next(r for r in rows if r.resource_type is ResourceType.model and r.label == "claude-sonnet-4")

    _, rows = await policies.effective_access(db, actor, excepted.id, resource_type=ResourceType.model)
    assert claude(rows).decision.allowed
    assert claude(rows).decision.rule is not None
    assert claude(rows).decision.rule.scope is Scope.user
    _, rows = await policies.effective_access(db, actor, other.id, resource_type=ResourceType.model)
    assert not claude(rows).decision.allowed
    assert "group-level rule (Group Support)" in claude(rows).explanation
    _, rows = await policies.effective_access(db, actor, owner.id, resource_type=ResourceType.model)
    assert all(row.decision.allowed for row in rows)  # the demo's token can call every model
    assert len(rows) == 4
