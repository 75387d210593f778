"""Attribution of calls: projects (header or project token), agents, and the group as it was."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth.tokens import issue_token
from cockpit.authz.actor import Actor
from cockpit.groups.service import create_group
from cockpit.projects.models import Project, ProjectRole
from cockpit.projects.service import create_project, set_member
from cockpit.users.models import User
from cockpit.users.service import move_to_group
from tests.gateway.conftest import Org, client_for, records
from tests.gateway.live import fast_passwords  # noqa: F401

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


async def chat(app: Any, token: str, **headers: str) -> Any:
    client = client_for(app, token, **headers)
    return await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


async def project(db: AsyncSession, org: Org, name: str, *members: User) -> Project:
    actor = Actor.system(org.account_id)
    created = await create_project(db, actor, name=name)
    for user in members:
        await set_member(db, actor, created.id, user.id, role=ProjectRole.project_member)
    await db.commit()
    return created


async def test_project_by_id(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    atlas = await project(db, org, "Atlas", org.member)
    await chat(gateway_app, org.member_token, **{"X-Cockpit-Project": str(atlas.id)})
    [row] = await records(gateway_app, db, org.account_id)
    assert row.project_id == atlas.id
    assert row.status == "success"


async def test_project_by_name_case_insensitive(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    atlas = await project(db, org, "Atlas", org.member)
    await project(db, org, "Borealis", org.member)
    headers = ["Atlas", "atlas", "ATLAS", "  Atlas  "]
    for header in headers:
        await chat(gateway_app, org.member_token, **{"X-Cockpit-Project": header})
    rows = await records(gateway_app, db, org.account_id)
    assert [r.project_id for r in rows] == [atlas.id] * len(headers)


async def test_no_header_no_project(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await project(db, org, "Atlas", org.member)
    await chat(gateway_app, org.member_token)
    [row] = await records(gateway_app, db, org.account_id)
    assert row.project_id is None


async def test_not_a_member(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await project(db, org, "Secret", org.admin)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await chat(gateway_app, org.member_token, **{"X-Cockpit-Project": "secret"})
    assert caught.value.status_code == 403
    assert caught.value.code == "not_project_member"
    assert caught.value.response.json()["error"]["message"] == "You are not a member of the project 'Secret'."
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.status, row.http_status, row.error_type) == ("error", 403, "not_project_member")
    assert row.project_id is None


async def test_admin_may_attribute_to_any_project(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    secret = await project(db, org, "Secret", org.member)  # the admin is not a member
    await chat(gateway_app, org.admin_token, **{"X-Cockpit-Project": "Secret"})
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.project_id, row.user_id, row.status) == (secret.id, org.admin.id, "success")


@pytest.mark.parametrize("header", ["Nowhere", str(uuid.UUID(int=7))])
async def test_unknown_project(gateway_app: Any, db: AsyncSession, org: Org, header: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, org.member_token, **{"X-Cockpit-Project": header})
    assert caught.value.code == "unknown_project"
    assert (
        caught.value.response.json()["error"]["message"]
        == f"Unknown project '{header}' in X-Cockpit-Project."
    )
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type) == (400, "unknown_project")


async def test_another_accounts_project_is_unknown(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    from tests.builders import make_account

    other, _ = await make_account(db, name="Other Co")
    theirs = await create_project(db, Actor.system(other.id), name="Theirs")
    await db.commit()
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, org.admin_token, **{"X-Cockpit-Project": str(theirs.id)})
    assert caught.value.code == "unknown_project"


async def test_project_token(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    atlas = await project(db, org, "Atlas", org.member)
    borealis = await project(db, org, "Borealis", org.member)
    _, raw = await issue_token(
        db, Actor.system(org.account_id), org.member, name="atlas ci", scopes=["gateway"], project_id=atlas.id
    )
    await db.commit()

    await chat(gateway_app, raw)  # attributed without a header
    await chat(gateway_app, raw, **{"X-Cockpit-Project": "atlas"})  # the same project: fine
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, raw, **{"X-Cockpit-Project": str(borealis.id)})
    assert caught.value.code == "project_mismatch"

    rows = await records(gateway_app, db, org.account_id)
    assert [(r.project_id, r.status, r.http_status) for r in rows] == [
        (atlas.id, "success", 200),
        (atlas.id, "success", 200),
        (atlas.id, "error", 400),
    ]
    assert rows[2].error_type == "project_mismatch"


async def test_agent_is_recorded(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await chat(gateway_app, org.member_token, **{"X-Cockpit-Agent": "  nightly-summariser v2 "})
    [row] = await records(gateway_app, db, org.account_id)
    assert row.agent_id == "nightly-summariser v2"


@pytest.mark.parametrize("agent", ["a" * 101, "tab\there"])
async def test_invalid_agent(gateway_app: Any, db: AsyncSession, org: Org, agent: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat(gateway_app, org.member_token, **{"X-Cockpit-Agent": agent})
    assert caught.value.code == "invalid_agent"
    [row] = await records(gateway_app, db, org.account_id)
    assert (row.http_status, row.error_type, row.agent_id) == (400, "invalid_agent", None)


async def test_agent_of_100_characters_is_accepted(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    await chat(gateway_app, org.member_token, **{"X-Cockpit-Agent": "b" * 100})
    [row] = await records(gateway_app, db, org.account_id)
    assert row.agent_id == "b" * 100


async def test_group_is_recorded_as_it_was(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    first_group = org.member.group_id
    await chat(gateway_app, org.member_token)
    actor = Actor.system(org.account_id)
    research = await create_group(db, actor, name="Research")
    user = await db.get(User, org.member.id)
    assert user is not None
    await move_to_group(db, actor, user, research)
    await db.commit()
    await chat(gateway_app, org.member_token)

    rows = await records(gateway_app, db, org.account_id)
    assert [r.group_id for r in rows] == [first_group, research.id]
    assert first_group != research.id


async def test_membership_changes_apply_at_once(gateway_app: Any, db: AsyncSession, org: Org) -> None:
    from cockpit.projects.service import remove_member

    atlas = await project(db, org, "Atlas", org.admin)
    header = {"X-Cockpit-Project": "Atlas"}
    with pytest.raises(openai.PermissionDeniedError):
        await chat(gateway_app, org.member_token, **header)
    await set_member(
        db, Actor.system(org.account_id), atlas.id, org.member.id, role=ProjectRole.project_member
    )
    await db.commit()
    await chat(gateway_app, org.member_token, **header)
    await remove_member(db, Actor.system(org.account_id), atlas.id, org.member.id)
    await db.commit()
    with pytest.raises(openai.PermissionDeniedError):
        await chat(gateway_app, org.member_token, **header)
    rows = await records(gateway_app, db, org.account_id)
    assert [(r.http_status, r.project_id) for r in rows] == [(403, None), (200, atlas.id), (403, None)]
