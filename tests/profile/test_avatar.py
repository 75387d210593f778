"""Avatar pictures: checked by their bytes, stored in the database, served only within the account."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit.models import AuditEntry
from cockpit.auth.images import MAX_IMAGE_BYTES, check_image
from cockpit.kit.errors import InvalidInput
from cockpit.users.models import User, UserAvatar
from tests.builders import bearer, console_login, csrf_for, make_account, make_token, make_user

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def png(width: int = 2, height: int = 2, *, padding: int = 0) -> bytes:
    """A real PNG (grey pixels); ``padding`` adds an ancillary chunk to make it larger."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    extra = chunk(b"tEXt", b"c\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 4) + b"JF" + sof + b"\xff\xd9"


def webp(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


async def _avatar_actions(db: AsyncSession, account_id: uuid.UUID) -> list[dict[str, object] | None]:
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.account_id == account_id, AuditEntry.action == "user.avatar_changed")
        .order_by(AuditEntry.seq)
    )
    return [e.after for e in rows]


def test_pictures_are_recognised_by_their_bytes_with_their_size() -> None:
    assert (check_image(png(3, 5)).media_type, check_image(png(3, 5)).width) == ("image/png", 3)
    assert check_image(png(3, 5)).height == 5
    found = check_image(jpeg(640, 480))
    assert (found.media_type, found.width, found.height) == ("image/jpeg", 640, 480)
    found = check_image(webp(300, 200))
    assert (found.media_type, found.width, found.height) == ("image/webp", 300, 200)
    for bad in (b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"<html>", b"GIF89a....", png()[:20], b""):
        with pytest.raises(InvalidInput):
            check_image(bad)
    with pytest.raises(InvalidInput, match="4096"):
        check_image(png(5000, 1))


async def test_an_avatar_is_uploaded_shown_served_and_removed(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    await console_login(client, person.email)
    picture = png(4, 4)

    uploaded = await client.post(
        "/profile/avatar",
        data={"csrf_token": await csrf_for(client, "/profile")},
        files={"file": ("me.txt", picture, "text/plain")},  # the client's type is not trusted either way
    )
    assert uploaded.status_code == 303

    page = await client.get("/profile")
    assert f'src="/profile/avatar/{person.id}?v=' in page.text
    menu_button = page.text.split('class="account-menu"')[0].rsplit('data-testid="account-manager"', 1)[1]
    assert f"/profile/avatar/{person.id}?v=" in menu_button
    served = await client.get(f"/profile/avatar/{person.id}")
    assert served.status_code == 200
    assert served.content == picture
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["cache-control"].startswith("private")

    removed = await client.post(
        "/profile/avatar/remove", data={"csrf_token": await csrf_for(client, "/profile")}
    )
    assert removed.status_code == 303
    assert (await client.get(f"/profile/avatar/{person.id}")).status_code == 404
    assert f"/profile/avatar/{person.id}" not in (await client.get("/profile")).text
    actions = await _avatar_actions(db, account.id)
    assert [a["avatar"] for a in actions if a] == ["added", "removed"]


async def test_only_the_accounts_people_see_an_avatar(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    other_account, _ = await make_account(db)
    person = await make_user(db, account)
    colleague = await make_user(db, account)
    stranger = await make_user(db, other_account)
    await client.put("/api/v1/me/avatar", content=png(), headers=bearer(await make_token(db, person)))

    await console_login(client, colleague.email)
    assert (await client.get(f"/profile/avatar/{person.id}")).status_code == 200
    client.cookies.clear()  # sign in as someone else
    await console_login(client, stranger.email)
    assert (await client.get(f"/profile/avatar/{person.id}")).status_code == 404
    assert (await client.get("/profile/avatar/not-a-uuid")).status_code == 404


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"<script>alert(1)</script>", 422, "invalid_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, 422, "invalid_image"),
        (png(padding=MAX_IMAGE_BYTES), 413, "image_too_large"),
    ],
)
async def test_bad_uploads_change_nothing(
    db: AsyncSession, client: AsyncClient, content: bytes, status: int, code: str
) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    await console_login(client, person.email)

    page = await client.post(
        "/profile/avatar",
        data={"csrf_token": await csrf_for(client, "/profile")},
        files={"file": ("a.png", content, "image/png")},
    )
    api = await client.put(
        "/api/v1/me/avatar",
        content=content,
        headers={**bearer(await make_token(db, person)), "Content-Type": "image/png"},
    )

    assert page.status_code == status
    assert api.status_code == status
    assert api.json()["error"]["code"] == code
    assert await db.get(UserAvatar, person.id) is None
    user = await db.get(User, person.id, populate_existing=True)
    assert user is not None
    assert user.avatar_updated_at is None
    assert await _avatar_actions(db, account.id) == []


async def test_the_api_sets_reads_and_removes_the_avatar(db: AsyncSession, client: AsyncClient) -> None:
    account, _ = await make_account(db)
    person = await make_user(db, account)
    headers = bearer(await make_token(db, person))
    picture = webp(64, 64)

    put = await client.put("/api/v1/me/avatar", content=picture, headers=headers)
    assert put.status_code == 200
    assert put.json()["avatar_updated_at"] is not None
    got = await client.get("/api/v1/me/avatar", headers=headers)
    assert (got.status_code, got.content, got.headers["content-type"]) == (200, picture, "image/webp")
    assert (await client.get("/api/v1/me", headers=headers)).json()["avatar_updated_at"] is not None

    deleted = await client.delete("/api/v1/me/avatar", headers=headers)
    assert deleted.json()["avatar_updated_at"] is None
    assert (await client.get("/api/v1/me/avatar", headers=headers)).status_code == 404
    # Larger than the REST body limit: refused before it is read.
    huge = await client.put("/api/v1/me/avatar", content=b"\x89PNG" + b"\x00" * 2_000_000, headers=headers)
    assert huge.status_code == 413
