"""Files in conversations (/api/v1/conversations/{id}/files): uploading each type a model can use,
the refusals (too large, the account's quota, a type Cockpit does not take, content that is not what
its name says, a damaged PDF, the ``files.upload`` policy), hostile names, downloads, isolation
between people and accounts, and attaching files to a message so that the model gets them."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fpdf import FPDF
from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.config import Settings
from cockpit.conversations import files, retention, service
from cockpit.conversations.models import Conversation, ConversationFile
from cockpit.kit.errors import InvalidInput
from cockpit.kit.time import utcnow
from cockpit.policies.models import AccessPolicy, Effect, ResourceType, Scope
from cockpit.providers.models import Model
from tests.conversations.conftest import CONVERSATIONS, Org, error_of, make_org, start

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00" + bytes(
    12
)
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


def pdf_of(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text=text)
    return bytes(pdf.output())


async def upload(
    client: AsyncClient, headers: dict[str, str], conversation_id: str, name: str, data: bytes,
    media_type: str = "application/octet-stream",
) -> Response:  # fmt: skip
    return await client.post(
        f"{CONVERSATIONS}/{conversation_id}/files", files={"file": (name, data, media_type)}, headers=headers
    )


async def uploaded(
    client: AsyncClient, headers: dict[str, str], conversation_id: str, name: str, data: bytes,
    media_type: str = "application/octet-stream",
) -> dict[str, Any]:  # fmt: skip
    response = await upload(client, headers, conversation_id, name, data, media_type)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("name", "data", "media_type", "text"),
    [
        ("notes.txt", "Plain notes — with ünïcode\n".encode(), "text/plain", "Plain notes — with ünïcode\n"),
        ("README.md", b"# Title\n\nSome *Markdown*.\n", "text/markdown", "# Title\n\nSome *Markdown*.\n"),
        ("table.csv", b"\xef\xbb\xbfname,amount\nwidgets,42\n", "text/csv", "name,amount\nwidgets,42\n"),
        ("data.json", b'{"a": [1, 2, {"b": null}]}', "application/json", '{"a": [1, 2, {"b": null}]}'),
        (
            "report.pdf",
            pdf_of("Quarterly numbers: 42 widgets"),
            "application/pdf",
            "Quarterly numbers: 42 widgets",
        ),
        ("photo.png", PNG, "image/png", None),
        ("photo.JPG", JPEG, "image/jpeg", None),
        ("anim.gif", GIF, "image/gif", None),
        ("pic.webp", WEBP, "image/webp", None),
    ],
)
async def test_each_type_a_model_can_use_is_taken(
    client: AsyncClient, db: AsyncSession, name: str, data: bytes, media_type: str, text: str | None
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    body = await uploaded(client, org.member_headers, conversation["id"], name, data)
    assert (body["name"], body["media_type"], body["size"], body["message_id"]) == (
        name,
        media_type,
        len(data),
        None,
    )
    assert body["text_chars"] == (len(text) if text is not None else None)
    kept = await db.scalar(select(ConversationFile).where(ConversationFile.id == uuid.UUID(body["id"])))
    assert kept is not None
    assert kept.text == text

    listed = await client.get(f"{CONVERSATIONS}/{conversation['id']}/files", headers=org.member_headers)
    assert [f["id"] for f in listed.json()["items"]] == [body["id"]]
    assert listed.json()["used_bytes"] == len(data)
    read = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/files/{body['id']}", headers=org.member_headers
    )
    assert read.json() == body

    content = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/files/{body['id']}/content", headers=org.member_headers
    )
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"].split(";")[0] == media_type
    assert content.headers["x-content-type-options"] == "nosniff"
    assert content.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("page.html", b"<!doctype html><script>alert(1)</script>", "unsupported_file_type"),
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "unsupported_file_type",
        ),
        ("page.txt", b"<html><body><script>alert(1)</script></body></html>", "unsupported_file_type"),
        ("drawing.md", b'<?xml version="1.0"?>\n<svg onload="alert(1)"></svg>', "unsupported_file_type"),
        ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00", "unsupported_file_type"),
        ("notes.txt", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 40, "unsupported_file_type"),
        ("archive.zip", b"PK\x03\x04rest", "unsupported_file_type"),
        ("binary.txt", bytes(range(256)) * 4, "not_text"),
        ("latin1.txt", "café".encode("latin-1"), "not_text"),
        ("nul.csv", b"a,b\n1,\x00\n", "not_text"),
        ("image.txt", PNG, "content_mismatch"),
        ("fake.png", b"just some text", "content_mismatch"),
        ("fake.pdf", PNG, "content_mismatch"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a PDF at all", "unreadable_pdf"),
        ("cut.pdf", pdf_of("Half of it")[:300], "unreadable_pdf"),
        ("bad.json", b'{"a": ', "invalid_json"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        ("empty.txt", b"", "empty_file"),
    ],
)
async def test_what_is_refused(
    client: AsyncClient, db: AsyncSession, name: str, data: bytes, code: str
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    response = await upload(client, org.member_headers, conversation["id"], name, data)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == code
    assert "'" in error_of(response)["message"]  # the message names the file
    listed = await client.get(f"{CONVERSATIONS}/{conversation['id']}/files", headers=org.member_headers)
    assert listed.json()["items"] == []


async def test_a_name_without_a_type_is_taken_by_its_content(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    image = await uploaded(client, org.member_headers, conversation["id"], "scan", PNG)
    assert image["media_type"] == "image/png"
    text = await upload(client, org.member_headers, conversation["id"], "LICENSE", b"MIT", "text/plain")
    assert text.json()["media_type"] == "text/plain"
    unknown = await upload(client, org.member_headers, conversation["id"], "blob", b"\x01\x02\x03")
    assert (unknown.status_code, error_of(unknown)["code"]) == (422, "unsupported_file_type")


async def test_too_large_and_the_accounts_quota(
    client: AsyncClient, db: AsyncSession, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "files_max_bytes", 2048)
    monkeypatch.setattr(settings, "files_account_quota_bytes", 5000)
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    too_large = await upload(client, org.member_headers, conversation["id"], "big.txt", b"x" * 2049)
    assert too_large.status_code == 413
    assert error_of(too_large)["code"] == "file_too_large"
    assert "2 KiB" in error_of(too_large)["message"]
    await uploaded(client, org.member_headers, conversation["id"], "a.txt", b"a" * 2048)
    await uploaded(client, org.member_headers, conversation["id"], "b.txt", b"b" * 2048)
    # Another person of the same account shares the account's quota.
    other = await start(client, org.other_member_headers)
    full = await upload(client, org.other_member_headers, other["id"], "c.txt", b"c" * 1000)
    assert full.status_code == 413
    assert error_of(full)["code"] == "files_quota_exceeded"
    await uploaded(client, org.other_member_headers, other["id"], "d.txt", b"d" * 900)
    listed = await client.get(f"{CONVERSATIONS}/{other['id']}/files", headers=org.other_member_headers)
    assert listed.json()["used_bytes"] == 2048 * 2 + 900
    assert listed.json()["quota_bytes"] == 5000


async def test_a_policy_that_denies_uploads_refuses_them(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    db.add(AccessPolicy(
        account_id=org.account.id, scope=Scope.user, scope_id=org.member.id,
        resource_type=ResourceType.feature, resource="files.upload", effect=Effect.deny,
    ))  # fmt: skip
    await db.commit()
    response = await upload(client, org.member_headers, conversation["id"], "notes.txt", b"hello")
    assert response.status_code == 403
    assert error_of(response)["code"] == "feature_not_allowed"
    other = await start(client, org.other_member_headers)
    await uploaded(client, org.other_member_headers, other["id"], "notes.txt", b"hello")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("bad\x00name.txt", "badname.txt"),
        ("bad\ud800name.txt", "badname.txt"),
        ("   .hidden.txt  ", "hidden.txt"),
        ("x" * 10_000 + ".txt", "x" * 196 + ".txt"),
        ("<script>alert(1)</script>.txt", "script>.txt"),  # the last part after a "/"
        ("résumé 2027.txt", "résumé 2027.txt"),
    ],
)
async def test_hostile_names_are_kept_harmless(
    client: AsyncClient, db: AsyncSession, settings: Settings, sent: str, kept: str
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    me = Actor.for_user(org.member)

    class Source:
        def __init__(self) -> None:
            self.data = b"harmless text"

        async def read(self, size: int = -1) -> bytes:
            chunk, self.data = self.data, b""
            return chunk

    stored = await files.upload_file(
        db, me, uuid.UUID(conversation["id"]), name=sent, source=Source(), settings=settings
    )
    await db.commit()
    assert stored.name == kept
    # The bytes are under the data directory, by account and a key of ours: never the name.
    path = settings.data_dir / "files" / org.account.id.hex / stored.storage_key
    assert path.read_bytes() == b"harmless text"
    content = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/files/{stored.id}/content", headers=org.member_headers
    )
    disposition = content.headers["content-disposition"]
    assert disposition.isascii()
    assert "/" not in disposition.split("filename=")[1].split(";")[0]
    assert "filename*=UTF-8''" in disposition


async def test_a_path_sent_as_the_name_is_not_a_path(
    client: AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    body = await uploaded(
        client, org.member_headers, conversation["id"], "../../etc/passwd", b"root:x:0:0", "text/plain"
    )
    assert (body["name"], body["media_type"]) == ("passwd", "text/plain")
    assert not (settings.data_dir / "etc").exists()
    content = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/files/{body['id']}/content", headers=org.member_headers
    )
    assert (
        content.headers["content-disposition"] == "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
    )


async def test_another_persons_and_another_accounts_files_are_not_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    kept = await uploaded(client, org.member_headers, conversation["id"], "notes.txt", b"secret")
    base = f"{CONVERSATIONS}/{conversation['id']}/files"
    for headers in (org.other_member_headers, org.stranger_headers):
        for url in (base, f"{base}/{kept['id']}", f"{base}/{kept['id']}/content"):
            response = await client.get(url, headers=headers)
            assert response.status_code == 404, url
        refused = await upload(client, headers, conversation["id"], "mine.txt", b"x")
        assert refused.status_code == 404
    # A file id of another conversation of the same person is not found in this one.
    second = await start(client, org.member_headers)
    assert (
        await client.get(f"{CONVERSATIONS}/{second['id']}/files/{kept['id']}", headers=org.member_headers)
    ).status_code == 404
    assert (await client.get(f"{base}/{uuid.uuid4()}", headers=org.member_headers)).status_code == 404


async def _vision(db: AsyncSession, org: Org, on: bool) -> None:
    capabilities = ["chat", "vision"] if on else ["chat"]
    await db.execute(update(Model).where(Model.id == org.models["gpt-4o"]).values(capabilities=capabilities))
    await db.commit()


async def test_attached_files_go_to_the_model_with_their_message(
    client: AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    cid = uuid.UUID(conversation["id"])
    me = Actor.for_user(org.member)
    text = await uploaded(client, org.member_headers, conversation["id"], "notes.md", b"# Plan\nShip it.")
    image = await uploaded(client, org.member_headers, conversation["id"], "chart.png", PNG)
    later = await uploaded(client, org.member_headers, conversation["id"], "later.txt", b"Not sent yet")

    asked = await service.add_user_message(db, me, cid, content="Read these")
    attached = await files.attach(db, me, cid, [uuid.UUID(text["id"]), uuid.UUID(image["id"])], asked.id)
    await db.commit()
    assert [f.name for f in attached] == ["notes.md", "chart.png"]

    history = await service.history(db, me, cid, settings=settings)
    assert history == [{"role": "user", "content": [
        {"type": "text", "text": "Read these"},
        {"type": "text", "text": "Attached file notes.md:\n# Plan\nShip it."},
        {"type": "text", "text": "[image chart.png attached: this model cannot see images]"},
    ]}]  # fmt: skip

    await _vision(db, org, True)
    parts = await files.context_parts(db, me, cid, [asked.id], settings=settings)
    image_part = parts[asked.id][1]
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")

    # An answer, then a message without files: only the first carries them.
    await service.add_assistant_message(db, me, cid, parent_id=asked.id, content="Done.")
    plain = await service.add_user_message(db, me, cid, content="Thanks")
    await db.commit()
    history = await service.history(db, me, cid, settings=settings)
    assert [type(m["content"]).__name__ for m in history] == ["list", "str", "str"]

    # A file already sent, another conversation's, or a message that is not the person's: refused.
    for ids, message in (([uuid.UUID(text["id"])], plain.id), ([uuid.uuid4()], plain.id)):
        with pytest.raises(InvalidInput, match="not sent yet"):
            await files.attach(db, me, cid, ids, message)
    answer = (await service.messages(db, me, cid))[1].message
    with pytest.raises(InvalidInput, match="message of yours"):
        await files.attach(db, me, cid, [uuid.UUID(later["id"])], answer.id)
    listed = await client.get(f"{CONVERSATIONS}/{cid}/files", headers=org.member_headers)
    assert [f["message_id"] for f in listed.json()["items"]] == [str(asked.id), str(asked.id), None]


async def test_a_purged_conversation_takes_its_files_bytes_with_it(
    client: AsyncClient, db: AsyncSession, settings: Settings, app: Any
) -> None:
    org = await make_org(db)
    kept, purged = await start(client, org.member_headers), await start(client, org.member_headers)
    a = await uploaded(client, org.member_headers, kept["id"], "keep.txt", b"kept")
    b = await uploaded(client, org.member_headers, purged["id"], "gone.txt", b"gone")
    rows = {f.id: f for f in await db.scalars(select(ConversationFile))}
    folder = settings.data_dir / "files" / org.account.id.hex
    paths = {name: folder / rows[uuid.UUID(f["id"])].storage_key for name, f in (("a", a), ("b", b))}
    assert all(p.exists() for p in paths.values())
    await db.execute(
        update(Conversation)
        .where(Conversation.id == uuid.UUID(purged["id"]))
        .values(deleted_at=utcnow() - timedelta(days=31))
    )
    await db.commit()
    assert await retention.purge_deleted(app.state.sessionmaker, settings=settings) == 1
    assert paths["a"].exists()
    assert not paths["b"].exists()
    listed = await client.get(f"{CONVERSATIONS}/{kept['id']}/files", headers=org.member_headers)
    assert listed.json()["used_bytes"] == 4
