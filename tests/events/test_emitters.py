"""Each domain records its platform event, with the person and group concerned and the template
variables of the catalogue, in the transaction of the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.analytics.filters import Filters
from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.credits.cycles import current_cycle
from cockpit.credits.models import CreditCycle, GroupBudget
from cockpit.credits.scheduler import roll_over_due
from cockpit.events.catalog import EVENTS
from cockpit.exports import service as exports
from cockpit.exports.models import ExportFormat, ExportView
from cockpit.groups.models import Group
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow
from cockpit.tenancy.models import Account
from cockpit.users.models import User, UserRole
from tests.analytics.data import END, START
from tests.builders import bearer, make_account, make_token, make_user
from tests.events.helpers import events_of, names_of
from tests.exports.jobs import run_exports

API = "/api/v1"


@dataclass(frozen=True)
class Org:
    """Ids and values only: the tests read events after rollbacks that expire loaded rows."""

    account_id: uuid.UUID
    owner_id: uuid.UUID
    member_id: uuid.UUID
    member_email: str
    group_id: uuid.UUID
    headers: dict[str, str]
    member: User
    account: Account


async def make_org(db: AsyncSession) -> Org:
    account, owner = await make_account(db, name="Acme")
    owner.name = "Olivia Owner"
    member = await make_user(db, account, role=UserRole.member)
    member.name = "Mia Member"
    group = Group(account_id=account.id, name="Support", name_key="support", description="")
    db.add(group)
    await db.flush()
    member.group_id = group.id
    budget = GroupBudget(
        group_id=group.id, account_id=account.id, monthly=Decimal(1000), auto_approve_limit=Decimal(100)
    )
    db.add(budget)
    await db.commit()
    headers = bearer(await make_token(db, owner))
    for row in (account, owner, member, group):
        await db.refresh(row)
    return Org(account.id, owner.id, member.id, member.email, group.id, headers, member, account)


def assert_catalogued(data: dict[str, Any], name: str) -> None:
    """The event carries exactly the variables its templates may use (besides the common ones)."""
    assert set(data) == set(EVENTS[name].variables), (name, data)


async def test_invitations_announce_sending_and_acceptance_not_a_resend(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await make_org(db)
    sent = await client.post(
        f"{API}/invitations", json={"email": "nina@example.com", "name": "Nina", "group_id": str(o.group_id)},
        headers=o.headers,
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    [event] = await events_of(db, o.account_id)
    assert event.name == "invitation.sent"
    assert_catalogued(event.data, "invitation.sent")
    assert event.data["person_email"] == "nina@example.com"
    assert (event.data["person_name"], event.data["invited_by"]) == ("Nina", "Olivia Owner")
    expires = (utcnow() + timedelta(days=7)).date()
    assert str(expires.year) in event.data["expires_at"]
    assert (event.person_id, event.group_id, event.actor_id) == (None, o.group_id, o.owner_id)

    resent = await client.post(f"{API}/invitations/{sent.json()['id']}/resend", headers=o.headers)
    assert resent.status_code == 200
    token = resent.json()["accept_url"].rsplit("/", 1)[1]
    body = {"token": token, "name": "Nina Newcomer", "password": "correct-horse-battery-9"}
    accepted = await client.post(f"{API}/invitations/accept", json=body)
    assert accepted.status_code == 201, accepted.text
    assert await names_of(db, o.account_id) == ["invitation.sent", "invitation.accepted"]
    joined = (await events_of(db, o.account_id, "invitation.accepted"))[0]
    user_id = uuid.UUID(accepted.json()["user_id"])
    assert joined.data == {"person_name": "Nina Newcomer", "person_email": "nina@example.com"}
    assert (joined.person_id, joined.group_id, joined.actor_id) == (user_id, o.group_id, user_id)


async def test_a_refused_invitation_announces_nothing(client: AsyncClient, db: AsyncSession) -> None:
    o = await make_org(db)
    refused = await client.post(f"{API}/invitations", json={"email": o.member_email}, headers=o.headers)
    assert refused.status_code == 409
    assert await events_of(db, o.account_id) == []


async def test_deactivating_a_user_announces_it(client: AsyncClient, db: AsyncSession) -> None:
    o = await make_org(db)
    response = await client.post(f"{API}/users/{o.member_id}/deactivate", headers=o.headers)
    assert response.status_code == 200, response.text
    [event] = await events_of(db, o.account_id)
    assert event.name == "user.deactivated"
    assert event.data == {
        "person_name": "Mia Member", "person_email": o.member_email, "deactivated_by": "Olivia Owner",
    }  # fmt: skip
    assert (event.person_id, event.group_id, event.actor_id) == (o.member_id, o.group_id, o.owner_id)


async def test_credit_requests_announce_filing_auto_approval_approval_and_denial(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await make_org(db)
    member = bearer(await make_token(db, o.member))

    async def ask(amount: str, reason: str) -> str:
        response = await client.post(
            f"{API}/credit-requests", json={"amount": amount, "reason": reason}, headers=member
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    await ask("50", "Small top-up")  # within the auto-approve limit
    big = await ask("1500.5", "A customer demo")  # above it, and above what the group has
    other = await ask("400", "More")
    approved = await client.post(
        f"{API}/credit-requests/{big}/approve", json={"amount": "300"}, headers=o.headers
    )
    assert approved.status_code == 200, approved.text
    denied = await client.post(
        f"{API}/credit-requests/{other}/deny", json={"note": "Not now"}, headers=o.headers
    )
    assert denied.status_code == 200, denied.text

    events = await events_of(db, o.account_id)
    assert [e.name for e in events] == [
        "credit_request.auto_approved", "credit_request.created", "credit_request.created",
        "credit_request.approved", "credit_request.denied",
    ]  # fmt: skip
    person = {"person_name": "Mia Member", "person_email": o.member_email}
    auto, created, _, approve, deny = events
    assert auto.data == {**person, "amount": "50"}
    assert created.data == {**person, "amount": "1,500.5", "reason": "A customer demo"}
    assert approve.data == {**person, "amount": "300", "decided_by": "Olivia Owner", "note": ""}
    assert deny.data == {**person, "amount": "400", "decided_by": "Olivia Owner", "note": "Not now"}
    for event in events:
        assert_catalogued(event.data, event.name)
        assert (event.person_id, event.group_id) == (o.member_id, o.group_id)
    assert {e.actor_id for e in (auto, created)} == {o.member_id}
    assert {e.actor_id for e in (approve, deny)} == {o.owner_id}


async def test_access_rules_announce_added_removed_and_default_changes(
    client: AsyncClient, db: AsyncSession
) -> None:
    o = await make_org(db)
    body = {
        "scope": "group", "scope_id": str(o.group_id), "resource_type": "feature",
        "resource": "credit_requests.create", "effect": "deny",
    }  # fmt: skip
    created = await client.post(f"{API}/policies", json=body, headers=o.headers)
    assert created.status_code == 201, created.text
    everyone = {"scope": "account", "resource_type": "model", "resource": "*", "effect": "allow"}
    assert (await client.post(f"{API}/policies", json=everyone, headers=o.headers)).status_code == 201
    removed = await client.delete(f"{API}/policies/{created.json()['id']}", headers=o.headers)
    assert removed.status_code == 200, removed.text
    changed = await client.patch(f"{API}/policies/defaults", json={"model": "deny"}, headers=o.headers)
    assert changed.status_code == 200, changed.text
    unchanged = await client.patch(f"{API}/policies/defaults", json={"model": "deny"}, headers=o.headers)
    assert unchanged.status_code == 200

    events = await events_of(db, o.account_id)
    assert [e.name for e in events] == ["policy.changed"] * 4
    assert [(e.data["change"], e.data["rule"]) for e in events] == [
        ("added", "Group Support may not ask for extra credits"),
        ("added", "Everyone may use all models"),
        ("removed", "Group Support may not ask for extra credits"),
        ("changed", "by default, models are denied"),
    ]
    for event in events:
        assert_catalogued(event.data, "policy.changed")
        assert (event.data["changed_by"], event.actor_id) == ("Olivia Owner", o.owner_id)


async def test_a_new_cycle_is_announced_once_whoever_starts_it(
    client: AsyncClient, db: AsyncSession, database_url: str
) -> None:
    o = await make_org(db)
    first_id = (await current_cycle(db, o.account)).id
    await db.commit()
    assert await events_of(db, o.account_id) == []  # the account's first cycle renews nothing

    reset = await client.post(f"{API}/credits/cycle/reset", headers=o.headers)
    assert reset.status_code == 200, reset.text
    [manual] = await events_of(db, o.account_id, "cycle.reset")
    assert (manual.dedupe_key, manual.actor_id) == (f"cycle:{reset.json()['id']}", o.owner_id)
    assert_catalogued(manual.data, "cycle.reset")

    # The cycle ends: the roll-over job (twice, as two workers would) starts the next one once.
    open_cycle = (CreditCycle.closed_at.is_(None), CreditCycle.account_id == o.account_id)
    await db.execute(update(CreditCycle).where(*open_cycle).values(ends_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    engine = make_engine(database_url)
    try:
        assert await roll_over_due(make_sessionmaker(engine)) >= 1
        await roll_over_due(make_sessionmaker(engine))
    finally:
        await engine.dispose()
    events = await events_of(db, o.account_id, "cycle.reset")
    assert len(events) == 2
    newest = await db.scalar(
        select(CreditCycle)
        .where(CreditCycle.account_id == o.account_id)
        .order_by(CreditCycle.seq.desc())
        .limit(1)
    )
    assert newest is not None
    assert newest.id != first_id
    assert (events[1].dedupe_key, events[1].actor_id) == (f"cycle:{newest.id}", None)
    assert events[1].data["starts_at"].endswith(str(newest.starts_at.year))


async def test_a_failing_integration_is_announced_once_a_day(
    private_client: AsyncClient, db: AsyncSession
) -> None:
    o = await make_org(db)
    body = {"name": "Order desk", "kind": "mcp", "url": "http://127.0.0.1:9/mcp", "auth": {"type": "none"}}
    created = await private_client.post(f"{API}/integrations", json=body, headers=o.headers)
    assert created.status_code == 201, created.text
    again = await private_client.post(f"{API}/integrations/{created.json()['id']}/test", headers=o.headers)
    assert again.json()["ok"] is False
    [event] = await events_of(db, o.account_id)
    assert event.name == "integration.failing"
    assert event.data["integration"] == "Order desk"
    assert "refused" in event.data["error"]
    assert event.dedupe_key == f"integration-failing:{created.json()['id']}:{utcnow().date().isoformat()}"


async def test_a_finished_export_is_announced_to_who_asked(
    db: AsyncSession, settings: Settings, database_url: str
) -> None:
    o = await make_org(db)

    async def named(*_: object) -> dict[Any, str]:
        return {}

    export = await exports.request_export(
        db,
        Actor.for_user(o.member),
        format=ExportFormat.xlsx,
        view=ExportView.calls,
        filters=Filters(START, END),
    )
    export_id = export.id
    await db.commit()
    assert await events_of(db, o.account_id) == []  # asked, not ready
    assert await run_exports(settings, database_url, named) >= 1
    [event] = await events_of(db, o.account_id, "export.ready")
    assert_catalogued(event.data, "export.ready")
    assert (event.person_id, event.data["person_name"]) == (o.member_id, "Mia Member")
    assert event.data["export_name"] == "Calls, 23 Oct 2026 to 3 Nov 2026 (XLSX)"
    assert event.data["download_url"] == f"http://testserver/exports/{export_id}/download"
    assert event.dedupe_key == f"export:{export_id}"
