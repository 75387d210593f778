"""Ticket attachments: text, PDF and images up to a limit, typed by their content, downloaded as
attachments only, visible to whoever sees the ticket."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.tickets.attachments import MAX_BYTES
from tests.builders import console_login, csrf_for
from tests.tickets.helpers import API, audit_actions, filed, org

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_attach_and_download_over_the_api(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    t = await filed(client, o.member_headers)
    url = f"{API}/tickets/{t['id']}/attachments"
    sent = await client.post(
        url, files={"file": ("../../etc/screen shot.png", PNG, "text/plain")}, headers=o.member_headers
    )
    assert sent.status_code == 201, sent.text
    attached = sent.json()
    assert attached["name"] == "screen shot.png"
    assert attached["media_type"] == "image/png"  # from the content, not the declared type
    log = await client.post(
        url, files={"file": ("log.txt", b"error 502\n", "text/plain")}, headers=o.admin_headers
    )
    assert log.status_code == 201
    detail = (await client.get(f"{API}/tickets/{t['id']}", headers=o.member_headers)).json()
    assert [a["name"] for a in detail["attachments"]] == ["screen shot.png", "log.txt"]
    download = await client.get(f"{url}/{attached['id']}", headers=o.admin_headers)
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    # Someone else's ticket: not found, for the list and the bytes.
    assert (await client.get(f"{url}/{attached['id']}", headers=o.other_headers)).status_code == 404
    refused = await client.post(url, files={"file": ("x.txt", b"hi", "text/plain")}, headers=o.other_headers)
    assert refused.status_code == 404
    assert "support_ticket.attachment_added" in await audit_actions(db, o.account.id)


async def test_unsafe_or_large_files_are_refused(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    t = await filed(client, o.member_headers)
    url = f"{API}/tickets/{t['id']}/attachments"
    for name, data in (
        ("page.html", b"<!DOCTYPE html><script>alert(1)</script>"),
        ("image.svg", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
        ("tool.exe", b"MZ\x90\x00\x03" + b"\x00" * 100),
        ("big.txt", b"a" * (MAX_BYTES + 1)),
        ("empty.txt", b""),
    ):
        refused = await client.post(url, files={"file": (name, data, "text/plain")}, headers=o.member_headers)
        assert refused.status_code == 422, (name, refused.text)
    detail = (await client.get(f"{API}/tickets/{t['id']}", headers=o.member_headers)).json()
    assert detail["attachments"] == []


async def test_attach_from_the_ticket_page(client: AsyncClient, db: AsyncSession) -> None:
    o = await org(db)
    t = await filed(client, o.member_headers)
    await console_login(client, o.member.email)
    page_url = f"/support/{t['id']}"
    token = await csrf_for(client, page_url)
    sent = await client.post(
        f"{page_url}/attachments",
        data={"csrf_token": token},
        files={"file": ("<b>notes.txt", b"steps to reproduce", "text/plain")},
    )
    assert sent.status_code == 303
    page = await client.get(page_url)
    assert "&lt;b&gt;notes.txt" in page.text
    assert "<b>notes" not in page.text
    no_token = await client.post(f"{page_url}/attachments", files={"file": ("a.txt", b"x", "text/plain")})
    assert no_token.status_code == 403
