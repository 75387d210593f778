"""The failed-login throttle: growing delays, an hourly maximum per e-mail and per IP, and its audit trail.

Each test builds its own app with small limits. Time passing is simulated by inserting or ageing
``LoginFailure`` rows, never by sleeping.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.app import create_app
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import LoginFailure, LoginSession
from cockpit.kit.time import utcnow
from tests.builders import PASSWORD, bearer, csrf_from, make_account, make_token
from tests.conftest import make_settings

SESSION = "cockpit_session"
CLIENT_IP = "203.0.113.7"
OTHER_IP = "198.51.100.23"
WRONG = "definitely-wrong-password-1"
INVALID = "Incorrect e-mail or password."

Browser = Callable[..., Any]


# ---- helpers ----


@pytest.fixture
def throttled_app(
    database_url: str, tmp_path: Path, db: AsyncSession
) -> Callable[..., Any]:  # `db` empties the tables afterwards
    """Build an app with the throttle settings of the test; yields a factory of browsers on it."""

    @asynccontextmanager
    async def build(**overrides: object) -> AsyncIterator[Browser]:
        values: dict[str, object] = {"login_delay_after": 3, "login_max_failures_per_hour": 6}
        values.update(overrides)
        app = create_app(make_settings(database_url, tmp_path, **values))

        @asynccontextmanager
        async def browser(ip: str = CLIENT_IP) -> AsyncIterator[AsyncClient]:
            transport = ASGITransport(app=app, client=(ip, 50000))
            async with AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http

        try:
            yield browser
        finally:
            await app.state.engine.dispose()

    return build


async def login(client: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_from(page), "next": "/"}
    )


def error_message(response: Response) -> str:
    match = re.search(r'<div class="banner banner-error" role="alert">(.*?)</div>', response.text, re.S)
    assert match, "page shows no error banner"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def sets_session(response: Response) -> bool:
    return any(
        h.startswith(f"{SESSION}=") and not h.startswith(f'{SESSION}=""')
        for h in response.headers.get_list("set-cookie")
    )


def assert_signed_in(response: Response) -> None:
    assert response.status_code == 303, error_message(response)
    assert response.headers["location"] == "/"
    assert sets_session(response)


def assert_refused(response: Response, words: str) -> None:
    assert response.status_code == 429
    assert words in error_message(response)
    assert not sets_session(response)


async def add_failures(
    db: AsyncSession, email: str, n: int, *, age: timedelta, ip: str = CLIENT_IP, account_id: Any = None
) -> None:
    """``n`` failed attempts that happened ``age`` ago (the newest one exactly then)."""
    now = utcnow()
    for i in range(n):
        db.add(
            LoginFailure(
                email=email, ip=ip, account_id=account_id, created_at=now - age - timedelta(seconds=i)
            )
        )
    await db.commit()


async def age_failures(db: AsyncSession, by: timedelta) -> None:
    """Pretend ``by`` has passed since every recorded failure."""
    await db.commit()
    for failure in await db.scalars(select(LoginFailure).execution_options(populate_existing=True)):
        failure.created_at = failure.created_at - by
    await db.commit()


async def restart_delay(db: AsyncSession, email: str) -> None:
    """Make the failures for ``email`` happen right now: the current delay starts again."""
    await db.commit()
    await db.execute(update(LoginFailure).where(LoginFailure.email == email).values(created_at=utcnow()))
    await db.commit()


async def count_sessions(db: AsyncSession) -> int:
    await db.commit()
    return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


async def throttle_entries(db: AsyncSession, account_id: Any) -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == "auth.login_throttled")
        .order_by(AuditEntry.seq)
        .execution_options(populate_existing=True)
    )
    return list(rows)


def ghost() -> str:
    return f"ghost-{uuid.uuid4().hex[:8]}@example.com"


# ---- growing delays ----


async def test_after_the_allowed_failures_even_the_right_password_must_wait(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    async with throttled_app() as browser, browser() as client:
        for _ in range(3):
            failed = await login(client, owner.email, WRONG)
            assert failed.status_code == 401
            assert error_message(failed) == INVALID
        await restart_delay(db, owner.email)  # the third failure is "just now", however slow the run

        refused = await login(client, owner.email, PASSWORD)

        assert_refused(refused, "Wait")
        assert re.search(r"Wait \d+ seconds?", error_message(refused))
        assert (await client.get("/")).status_code == 303
    assert await count_sessions(db) == 0


async def test_once_the_delay_has_passed_the_right_password_works(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    async with throttled_app() as browser, browser() as client:
        for _ in range(3):
            assert (await login(client, owner.email, WRONG)).status_code == 401
        await restart_delay(db, owner.email)
        assert_refused(await login(client, owner.email, PASSWORD), "Wait")

        await age_failures(db, timedelta(seconds=5))  # the one-second delay is over

        assert_signed_in(await login(client, owner.email, PASSWORD))
        assert (await client.get("/")).status_code == 200


@pytest.mark.parametrize(("failures", "ago", "delay_after", "refused"), [(3, 3, 3, False), (5, 1, 1, True)])
async def test_delays_grow_with_each_failure(
    throttled_app: Callable[..., Any],
    db: AsyncSession,
    failures: int,
    ago: int,
    delay_after: int,
    refused: bool,
):
    # The first delay is 1 s (at the ``delay_after``-th failure) and doubles with each further
    # failure: 3 s after the last of 3 failures is enough when delays start at the third; 1 s after
    # the last of 5 failures when they start at the first (a 16 s delay) is not, with 15 s to spare
    # for a slow machine (a 4 s delay was not enough spare under a loaded CI run).
    _, owner = await make_account(db)
    await add_failures(db, owner.email, failures, age=timedelta(seconds=ago), account_id=owner.account_id)
    async with throttled_app(login_delay_after=delay_after) as browser, browser() as client:
        response = await login(client, owner.email, PASSWORD)
    if refused:
        assert_refused(response, "Wait")
    else:
        assert_signed_in(response)


async def test_a_wrong_password_during_the_delay_is_refused_like_the_right_one(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    # A 64 s delay (2 ** (7 - 1)): both attempts fall inside it however slow the machine is.
    await add_failures(db, owner.email, 7, age=timedelta(0), account_id=owner.account_id)
    async with (
        throttled_app(login_delay_after=1, login_max_failures_per_hour=100) as browser,
        browser() as client,
    ):
        right = await login(client, owner.email, PASSWORD)
        wrong = await login(client, owner.email, WRONG)
    assert_refused(right, "Wait")
    assert_refused(wrong, "Wait")
    # Nothing tells the guesser whether the refused password was right.
    assert error_message(right).split("Wait")[0] == error_message(wrong).split("Wait")[0]


# ---- the hourly maximum ----


async def test_at_the_hourly_maximum_sign_in_is_blocked_even_with_the_right_password(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    # Five failures spread over the last half hour: long past their delays.
    await add_failures(db, owner.email, 5, age=timedelta(minutes=30), account_id=owner.account_id)
    async with throttled_app() as browser, browser() as client:
        assert (await login(client, owner.email, WRONG)).status_code == 401  # the sixth
        await age_failures(db, timedelta(minutes=10))  # long past any delay, still within the hour

        blocked = await login(client, owner.email, PASSWORD)

        assert_refused(blocked, "blocked")
    assert await count_sessions(db) == 0


async def test_failures_older_than_an_hour_do_not_count(throttled_app: Callable[..., Any], db: AsyncSession):
    _, owner = await make_account(db)
    await add_failures(db, owner.email, 6, age=timedelta(minutes=61), account_id=owner.account_id)
    async with throttled_app() as browser, browser() as client:
        assert_signed_in(await login(client, owner.email, PASSWORD))


async def test_failures_within_the_hour_still_block(throttled_app: Callable[..., Any], db: AsyncSession):
    _, owner = await make_account(db)
    await add_failures(db, owner.email, 6, age=timedelta(minutes=59), account_id=owner.account_id)
    async with throttled_app() as browser, browser() as client:
        assert_refused(await login(client, owner.email, PASSWORD), "blocked")


async def test_the_throttle_is_per_email(throttled_app: Callable[..., Any], db: AsyncSession):
    _, owner = await make_account(db)
    _, other = await make_account(db, name="Other")
    await add_failures(db, owner.email, 6, age=timedelta(minutes=10), account_id=owner.account_id)
    async with throttled_app() as browser, browser() as client:
        assert_refused(await login(client, owner.email, PASSWORD), "blocked")
        assert_signed_in(await login(client, other.email, PASSWORD))


# ---- no account-existence oracle ----


async def test_unknown_emails_are_throttled_exactly_like_known_ones(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    unknown = ghost()

    async def attempts(client: AsyncClient, email: str) -> list[tuple[int, str]]:
        seen = []
        for _ in range(3):
            response = await login(client, email, WRONG)
            seen.append((response.status_code, error_message(response)))
        await restart_delay(db, email)
        response = await login(client, email, WRONG)
        seen.append((response.status_code, re.sub(r"\d+", "N", error_message(response))))
        return seen

    async with throttled_app() as browser, browser() as client:
        known_result = await attempts(client, owner.email)
        unknown_result = await attempts(client, unknown)

    assert known_result == unknown_result
    assert [status for status, _ in unknown_result] == [401, 401, 401, 429]
    assert "Wait" in unknown_result[-1][1]


async def test_unknown_emails_reach_the_hourly_block_too(throttled_app: Callable[..., Any], db: AsyncSession):
    unknown = ghost()
    await add_failures(db, unknown, 6, age=timedelta(minutes=20))
    async with throttled_app() as browser, browser() as client:
        assert_refused(await login(client, unknown, PASSWORD), "blocked")


async def test_email_case_does_not_escape_the_throttle(throttled_app: Callable[..., Any], db: AsyncSession):
    _, owner = await make_account(db)
    await add_failures(db, owner.email, 6, age=timedelta(minutes=10), account_id=owner.account_id)
    async with throttled_app() as browser, browser() as client:
        assert_refused(await login(client, owner.email.upper(), PASSWORD), "blocked")


# ---- per IP ----


async def test_the_ip_limit_blocks_other_emails_from_the_same_ip(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    # One guess each at many different e-mails, all from the same address.
    for _ in range(4):
        await add_failures(db, ghost(), 1, age=timedelta(minutes=15))
    async with throttled_app(login_ip_max_failures_per_hour=4) as browser:
        async with browser(CLIENT_IP) as same_ip:
            assert_refused(await login(same_ip, owner.email, PASSWORD), "blocked")
        async with browser(OTHER_IP) as other_ip:
            assert_signed_in(await login(other_ip, owner.email, PASSWORD))


async def test_failures_from_http_attempts_count_towards_the_ip_limit(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    _, owner = await make_account(db)
    async with throttled_app(login_ip_max_failures_per_hour=3) as browser, browser(CLIENT_IP) as client:
        for _ in range(3):
            assert (await login(client, ghost(), WRONG)).status_code == 401
        assert_refused(await login(client, owner.email, PASSWORD), "blocked")
        assert_refused(await login(client, ghost(), WRONG), "blocked")


# ---- audit trail ----


async def test_throttling_is_recorded_in_the_audit_log_and_visible_through_the_api(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    account, owner = await make_account(db)
    account_id, owner_id, owner_email = account.id, owner.id, owner.email
    token = await make_token(db, owner)
    async with throttled_app() as browser, browser() as client:
        for _ in range(3):
            assert (await login(client, owner_email, WRONG)).status_code == 401
        [delays] = await throttle_entries(db, account_id)
        assert delays.after == {"failures_last_hour": 3, "throttle": "growing delays"}

        # Failures 4 to 6: each after its delay has passed (simulated by ageing the rows).
        for _ in range(3):
            await age_failures(db, timedelta(minutes=1))
            assert (await login(client, owner_email, WRONG)).status_code == 401
        await age_failures(db, timedelta(minutes=1))
        assert_refused(await login(client, owner_email, PASSWORD), "blocked")

        entries = await throttle_entries(db, account_id)
        assert [e.after for e in entries] == [
            {"failures_last_hour": 3, "throttle": "growing delays"},
            {"failures_last_hour": 6, "throttle": "blocked for the hour"},
        ]
        for entry in entries:
            assert entry.target_id == str(owner_id)
            assert entry.target_label == owner_email
            assert entry.ip == CLIENT_IP
            assert entry.actor_kind == "anonymous"

        api = await client.get(
            "/api/v1/audit", params={"action": "auth.login_throttled"}, headers=bearer(token)
        )
    assert api.status_code == 200
    items = api.json()["items"]
    assert [item["after"]["throttle"] for item in items] == ["blocked for the hour", "growing delays"]
    assert {item["target_label"] for item in items} == {owner_email}
    assert {item["ip"] for item in items} == {CLIENT_IP}


async def test_refused_attempts_do_not_flood_the_audit_log(
    throttled_app: Callable[..., Any], db: AsyncSession
):
    account, owner = await make_account(db)
    await add_failures(db, owner.email, 6, age=timedelta(minutes=5), account_id=owner.account_id)
    await db.commit()
    before = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.account_id == account.id)
    )
    async with throttled_app() as browser, browser() as client:
        for _ in range(3):
            assert_refused(await login(client, owner.email, WRONG), "blocked")
    await db.commit()
    after = await db.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.account_id == account.id)
    )
    assert after == before
