"""The fan-out: who receives an event, once, in-app and by e-mail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.events.models import PlatformEvent
from cockpit.notifications import service
from cockpit.notifications.fanout import deliver_event
from cockpit.notifications.models import Channel, Notification
from cockpit.users.models import UserRole, UserStatus
from tests.builders import make_account, make_user
from tests.notifications.conftest import email_jobs, emit_event, notifications_of, run_jobs

REQUEST = {"person_name": "Mia Member", "person_email": "mia@example.com", "amount": "500", "reason": "demo"}


async def test_an_event_notifies_its_recipients_once_each(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Acme")
    admin = await make_user(db, account, role=UserRole.admin)
    member = await make_user(db, account)
    _, other_owner = await make_account(db, name="Other")
    emails, ids = sorted([owner.email, admin.email]), [owner.id, admin.id]
    member_id, other_id = member.id, other_owner.id

    await emit_event(db, account.id, "credit_request.created", REQUEST, person_id=member_id)
    await run_jobs(app, settings)

    for person_id in ids:
        [note] = await notifications_of(db, person_id)
        assert note.title == "Mia Member asks for 500 credits"
        assert "demo" in note.body
        assert note.link == "/credits/requests"
        assert note.read_at is None
    assert await notifications_of(db, member_id) == []  # the default recipients are admins only
    assert await notifications_of(db, other_id) == []
    assert sorted(j.payload["to"] for j in await email_jobs(db)) == emails


async def test_the_person_concerned_is_notified(app: Any, settings: Settings, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    member = await make_user(db, account)
    member_id, owner_id = member.id, owner.id
    await emit_event(
        db,
        account.id,
        "credit_request.approved",
        {**REQUEST, "decided_by": "Olivia", "note": ""},
        person_id=member_id,
    )
    await run_jobs(app, settings)
    [note] = await notifications_of(db, member_id)
    assert note.title == "Your request for 500 credits was approved"
    assert await notifications_of(db, owner_id) == []


async def test_another_accounts_person_is_never_notified(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    account, _ = await make_account(db)
    other, _ = await make_account(db, name="Other")
    stranger = await make_user(db, other)
    stranger_id = stranger.id
    await emit_event(db, account.id, "credit_request.approved", REQUEST, person_id=stranger_id)
    await run_jobs(app, settings)
    assert await notifications_of(db, stranger_id) == []


async def test_mutes_deactivated_people_and_mandatory_events(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    account, owner = await make_account(db)
    admin = await make_user(db, account, role=UserRole.admin)
    gone = await make_user(db, account, role=UserRole.admin, status=UserStatus.deactivated)
    await service.set_my_mutes(db, Actor.for_user(admin), ["credit_request.created"])
    owner_id, admin_id, gone_id = owner.id, admin.id, gone.id
    owner_email, admin_email, gone_email = owner.email, admin.email, gone.email
    await db.commit()

    await emit_event(db, account.id, "credit_request.created", REQUEST)
    await emit_event(db, account.id, "webhook.disabled", {"url": "https://h.example.com", "failures": 20})
    await run_jobs(app, settings)

    owner_events = {n.event for n in await notifications_of(db, owner_id)}
    assert owner_events == {"credit_request.created", "webhook.disabled"}
    assert [n.event for n in await notifications_of(db, admin_id)] == ["webhook.disabled"]  # mandatory
    assert await notifications_of(db, gone_id) == []
    sent = [
        (j.payload["to"], j.dedupe_key.split(":")[1] if j.dedupe_key else "") for j in await email_jobs(db)
    ]
    assert {to for to, _ in sent} == {owner_email, admin_email}
    assert gone_email not in {to for to, _ in sent}


async def test_a_fan_out_that_runs_twice_writes_once(app: Any, settings: Settings, db: AsyncSession) -> None:
    account, _ = await make_account(db)
    event = await emit_event(db, account.id, "credit_request.created", REQUEST)
    await run_jobs(app, settings)
    async with app.state.sessionmaker() as session, session.begin():  # a worker that re-runs the job
        found = await session.get(PlatformEvent, event.id)
        assert found is not None
        await deliver_event(session, found)
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(Notification)) == 1
    assert len(await email_jobs(db)) == 1


async def test_templates_decide_recipients_addresses_and_text(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    account, owner = await make_account(db, name="Acme")
    member = await make_user(db, account)
    member_id, owner_id = member.id, owner.id
    actor = Actor.for_user(owner)
    await service.save_template(
        db,
        actor,
        "credit_request.created",
        Channel.in_app,
        subject="{{ account_name }}: {{ amount }} for {{ person_name }}",
        recipients=["person"],
    )
    await service.save_template(
        db,
        actor,
        "credit_request.created",
        Channel.email,
        recipients=[],
        addresses=["Ops@Example.com", "ops@example.com"],
    )
    await db.commit()
    await emit_event(db, account.id, "credit_request.created", REQUEST, person_id=member_id)
    await run_jobs(app, settings)
    [note] = await notifications_of(db, member_id)
    assert note.title == "Acme: 500 for Mia Member"
    assert await notifications_of(db, owner_id) == []
    assert [j.payload["to"] for j in await email_jobs(db)] == ["ops@example.com"]


async def test_a_disabled_template_sends_nothing(app: Any, settings: Settings, db: AsyncSession) -> None:
    account, owner = await make_account(db)
    actor, owner_id = Actor.for_user(owner), owner.id
    for channel in Channel:
        await service.save_template(db, actor, "credit_request.created", channel, enabled=False)
    await db.commit()
    await emit_event(db, account.id, "credit_request.created", REQUEST)
    await run_jobs(app, settings)
    assert await notifications_of(db, owner_id) == []
    assert await email_jobs(db) == []


async def test_a_template_that_fails_falls_back_to_the_default(
    app: Any, settings: Settings, db: AsyncSession
) -> None:
    account, owner = await make_account(db)
    owner_id = owner.id
    await service.save_template(
        db, Actor.for_user(owner), "credit_request.created", Channel.in_app, subject="{{ amount * 100000 }}"
    )
    await db.commit()
    await emit_event(db, account.id, "credit_request.created", {**REQUEST, "amount": 500})
    await run_jobs(app, settings)
    [note] = await notifications_of(db, owner_id)
    assert note.title == "Mia Member asks for 500 credits"
