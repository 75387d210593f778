"""Artifacts: the code and documents answers produce — found in an answer (fenced blocks, their
names, long Markdown documents), a new version when a later answer changes one, listed per
conversation and across the person's conversations, read, downloaded with safe headers, isolated
between people and accounts; and the console's files-and-artifacts panel and artifacts page."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import artifacts, service
from cockpit.conversations.models import ArtifactKind, MessageStatus
from tests.builders import console_login, csrf_for
from tests.conversations.conftest import CONVERSATIONS, Org, error_of, make_org, start

ARTIFACTS = "/api/v1/artifacts"
CODE = "import sys\n\n\ndef main() -> None:\n    print(sys.argv)\n"


def fenced(body: str, info: str = "python") -> str:
    return f"```{info}\n{body}```\n"


async def answer(db: AsyncSession, org: Org, conversation_id: str, content: str, **fields: Any) -> uuid.UUID:
    """A question and this answer, kept as the gateway keeps them."""
    me = Actor.for_user(org.member)
    cid = uuid.UUID(conversation_id)
    asked = await service.add_user_message(db, me, cid, content="Write it")
    kept = await service.add_assistant_message(db, me, cid, parent_id=asked.id, content=content, **fields)
    await db.commit()
    return kept.id


# ---- what an answer holds ----


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (fenced(CODE), [("", False, "code", "python", "text/x-python")]),
        (fenced(CODE, 'python title="main.py"'), [("main.py", True, "code", "python", "text/x-python")]),
        (fenced(CODE, "python:src/tool/main.py"), [("main.py", True, "code", "python", "text/x-python")]),
        (fenced(CODE, "app.py"), [("app.py", True, "code", "python", "text/x-python")]),
        ("Save this as `cli.py`:\n\n" + fenced(CODE), [("cli.py", True, "code", "python", "text/x-python")]),
        ("Here it is:\n" + fenced(CODE, ""), [("", False, "code", "", "text/plain")]),
        (fenced("a\nb\nc\nd\n"), []),  # fewer than 5 lines: not an artifact
        ("```python\n" + CODE, []),  # never closed
        (
            fenced("<h1>x</h1>\n" * 5, 'html file="page.html"'),
            [("page.html", True, "code", "html", "text/html")],
        ),
        (fenced("FROM python\n" * 5, "Dockerfile"), [("Dockerfile", True, "code", "", "text/plain")]),
        ("e.g. this:\n" + fenced(CODE, "bash"), [("", False, "code", "bash", "text/x-shellscript")]),
        (fenced(fenced("x\n" * 5, "md") + "\nmore\nand more\nand more\n", "````markdown"[3:]), []),
    ],
)
def test_code_blocks_and_their_names(content: str, found: list[tuple[str, bool, str, str, str]]) -> None:
    got = [
        (f.name, f.named, f.kind.value, f.language, f.media_type) for f in artifacts.find_artifacts(content)
    ]
    assert got == found


def test_a_long_markdown_document_is_one_and_a_chatty_answer_is_not() -> None:
    document = "# Release plan\n\n" + "\n".join(f"- step {i}: do the thing" for i in range(40))
    [doc] = artifacts.find_artifacts(document)
    assert (doc.name, doc.kind, doc.media_type, doc.content) == (
        "Release plan", ArtifactKind.document, "text/markdown", document,
    )  # fmt: skip
    assert artifacts.find_artifacts("Sure! Here is a plan.\n\n" + document[2:]) == []  # no heading first
    assert artifacts.find_artifacts("# Short\n\nonly a few lines\n") == []
    mostly_code = "# Script\n" + fenced("x = 1\n" * 40)
    assert [f.kind for f in artifacts.find_artifacts(mostly_code)] == [ArtifactKind.code]


# ---- kept, versioned, listed ----


async def test_a_later_answer_makes_a_new_version_of_a_named_artifact(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    h = org.member_headers
    conversation = await start(client, h)
    cid = conversation["id"]
    first = await answer(
        db, org, cid, "Save as `main.py`:\n" + fenced(CODE) + "\nAnd:\n" + fenced(CODE, "sql")
    )
    listed = (await client.get(f"{CONVERSATIONS}/{cid}/artifacts", headers=h)).json()
    assert sorted((a["name"], a["version"], a["kind"]) for a in listed["items"]) == [
        ("main.py", 1, "code"), ("sql snippet 2", 1, "code"),  # numbered in the conversation
    ]  # fmt: skip
    assert listed["meta"]["total"] == 2
    main_v1 = next(a for a in listed["items"] if a["name"] == "main.py")
    assert main_v1["message_id"] == str(first)

    # The same code again (a regenerated answer): nothing new. Changed code: version 2.
    await answer(db, org, cid, fenced(CODE, "python title=main.py"))
    changed = CODE.replace("argv", "path")
    second = await answer(db, org, cid, "Updated `main.py`:\n" + fenced(changed))
    listed = (await client.get(f"{CONVERSATIONS}/{cid}/artifacts", headers=h)).json()
    assert listed["meta"]["total"] == 2
    main = next(a for a in listed["items"] if a["name"] == "main.py")
    assert (main["version"], main["lineage_id"], main["message_id"], main["latest"]) == (
        2, main_v1["lineage_id"], str(second), True,
    )  # fmt: skip
    versions = (await client.get(f"{ARTIFACTS}/{main['id']}/versions", headers=h)).json()["items"]
    assert [(v["version"], v["latest"]) for v in versions] == [(2, True), (1, False)]
    old = (await client.get(f"{ARTIFACTS}/{main_v1['id']}", headers=h)).json()
    assert (old["content"], old["latest"]) == (CODE, False)
    new = (await client.get(f"{ARTIFACTS}/{main['id']}", headers=h)).json()
    assert new["content"] == changed

    # Another conversation's file of the same name is another artifact; the list of all is paged.
    other = await start(client, h)
    await answer(db, org, other["id"], fenced(CODE, "python title=main.py"))
    await answer(db, org, other["id"], "# Guide\n" + "\n".join(f"line {i}" for i in range(40)))
    everything = (await client.get(ARTIFACTS, headers=h)).json()
    assert everything["meta"]["total"] == 4
    assert [a["name"] for a in everything["items"]][:2] == ["Guide", "main.py"]  # newest first
    documents = (await client.get(ARTIFACTS, params={"kind": "document"}, headers=h)).json()
    assert [a["name"] for a in documents["items"]] == ["Guide"]
    paged = (await client.get(ARTIFACTS, params={"per_page": 3, "page": 2}, headers=h)).json()
    assert (len(paged["items"]), paged["meta"]["total"]) == (1, 4)
    assert (await client.get(ARTIFACTS, params={"kind": "picture"}, headers=h)).status_code == 422


async def test_failed_and_stopped_answers_make_no_artifact(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    await answer(db, org, conversation["id"], fenced(CODE), status=MessageStatus.stopped)
    await answer(db, org, conversation["id"], fenced(CODE), status=MessageStatus.error, error="refused")
    listed = await client.get(f"{CONVERSATIONS}/{conversation['id']}/artifacts", headers=org.member_headers)
    assert listed.json()["items"] == []


async def test_downloads_are_attachments_never_pages(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    page = "<script>alert(1)</script>\n" * 5
    await answer(db, org, conversation["id"], fenced(page, 'html title="ünïcode page.html"') + fenced(CODE))
    items = (await client.get(ARTIFACTS, headers=org.member_headers)).json()["items"]
    html = next(a for a in items if a["language"] == "html")
    snippet = next(a for a in items if a["language"] == "python")
    download = await client.get(f"{ARTIFACTS}/{html['id']}/content", headers=org.member_headers)
    assert download.status_code == 200
    assert download.text == page
    assert download.headers["content-type"] == "text/plain; charset=utf-8"  # not text/html
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"unicode page.html\"; filename*=UTF-8''%C3%BCn%C3%AFcode%20page.html"
    )
    code = await client.get(f"{ARTIFACTS}/{snippet['id']}/content", headers=org.member_headers)
    assert code.headers["content-type"] == "text/x-python; charset=utf-8"
    assert 'filename="python snippet 2.py"' in code.headers["content-disposition"]


async def test_another_persons_and_another_accounts_artifacts_are_not_found(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    await answer(db, org, conversation["id"], fenced(CODE))
    [mine] = (await client.get(ARTIFACTS, headers=org.member_headers)).json()["items"]
    for headers in (org.other_member_headers, org.stranger_headers):
        assert (await client.get(ARTIFACTS, headers=headers)).json()["items"] == []
        one = f"{ARTIFACTS}/{mine['id']}"
        for url in (
            one,
            f"{one}/content",
            f"{one}/versions",
            f"{CONVERSATIONS}/{conversation['id']}/artifacts",
        ):
            response = await client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert error_of(response)["code"] in ("artifact_not_found", "conversation_not_found")
    # A deleted conversation's artifacts are gone from the lists too.
    await client.delete(f"{CONVERSATIONS}/{conversation['id']}", headers=org.member_headers)
    assert (await client.get(ARTIFACTS, headers=org.member_headers)).json()["items"] == []
    assert (await client.get(f"{ARTIFACTS}/{mine['id']}", headers=org.member_headers)).status_code == 404


async def test_hostile_text_in_an_answer_is_kept_storable(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    body = "nul \x00 here\nlone \ud800 surrogate\n" + "x\n" * 4
    await answer(db, org, conversation["id"], fenced(body, 'python title="../../etc/passwd.py"'))
    [kept] = (await client.get(ARTIFACTS, headers=org.member_headers)).json()["items"]
    assert kept["name"] == "passwd.py"
    detail = (await client.get(f"{ARTIFACTS}/{kept['id']}", headers=org.member_headers)).json()
    assert "\x00" not in detail["content"]
    assert "\ufffd" in detail["content"]


# ---- the console ----


async def test_the_panel_uploads_a_file_and_shows_the_artifacts(
    client: AsyncClient, db: AsyncSession
) -> None:
    org = await make_org(db)
    conversation = await start(client, org.member_headers)
    cid = conversation["id"]
    hostile = "<script>alert(1)</script>\n" * 5
    await answer(db, org, cid, fenced(hostile, "html title=page.html"))
    await console_login(client, org.member.email)

    panel = await client.get(f"/conversations/{cid}/files-panel")
    assert panel.status_code == 200
    assert 'id="files-panel"' in panel.text
    assert "<html" not in panel.text  # a partial
    assert "No files in this conversation." in panel.text
    assert "page.html" in panel.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in panel.text
    assert "<script>alert(1)</script>" not in panel.text
    assert 'enctype="multipart/form-data"' in panel.text

    token = await csrf_for(client, "/conversations/artifacts")
    htmx = await client.post(
        f"/conversations/{cid}/files", data={"csrf_token": token},
        files={"file": ("notes.md", b"# Notes\n", "text/markdown")}, headers={"HX-Request": "true"},
    )  # fmt: skip
    assert htmx.status_code == 200, htmx.text
    assert 'data-testid="files-notice"' in htmx.text
    assert re.search(r'<span class="conv-file-name">notes.md</span>', htmx.text)
    refused = await client.post(
        f"/conversations/{cid}/files", data={"csrf_token": token},
        files={"file": ("page.svg", b"<svg onload=alert(1)>", "image/svg+xml")}, headers={"HX-Request": "1"},
    )  # fmt: skip
    assert refused.status_code == 200
    assert 'data-testid="files-error"' in refused.text
    assert "page.svg" in refused.text
    plain = await client.post(
        f"/conversations/{cid}/files", data={"csrf_token": token},
        files={"file": ("table.csv", b"a,b\n1,2\n", "text/csv")},
    )  # fmt: skip
    assert (plain.status_code, plain.headers["location"]) == (303, f"/conversations/{cid}")
    forged = await client.post(
        f"/conversations/{cid}/files",
        data={"csrf_token": "forged"},
        files={"file": ("x.txt", b"x", "text/plain")},
    )
    assert forged.status_code == 403

    panel = await client.get(f"/conversations/{cid}/files-panel")
    assert panel.text.count('data-testid="file-row"') == 2
    [file_id] = re.findall(rf"/conversations/{cid}/files/([0-9a-f-]+)/download", panel.text)[:1]
    download = await client.get(f"/conversations/{cid}/files/{file_id}/download")
    assert download.content == b"# Notes\n"
    assert download.headers["content-disposition"].startswith("attachment;")

    # Another person's conversation: 404 for the panel, the upload and the downloads.
    other = await start(client, org.other_member_headers)
    assert (await client.get(f"/conversations/{other['id']}/files-panel")).status_code == 404
    sneaky = await client.post(
        f"/conversations/{other['id']}/files",
        data={"csrf_token": token},
        files={"file": ("x.txt", b"x", "text/plain")},
    )
    assert sneaky.status_code == 404
    assert (await client.get(f"/conversations/{cid}/files/{uuid.uuid4()}/download")).status_code == 404


async def test_the_artifacts_page(client: AsyncClient, db: AsyncSession) -> None:
    org = await make_org(db)
    await console_login(client, org.member.email)
    empty = await client.get("/conversations/artifacts")
    assert empty.status_code == 200
    assert "No artifacts yet" in empty.text
    conversation = await start(client, org.member_headers, title="Scripts <b>1</b>")
    await answer(db, org, conversation["id"], fenced(CODE, "python title=main.py"))
    await answer(db, org, conversation["id"], fenced(CODE + "# v2\n", "python title=main.py"))
    page = await client.get("/conversations/artifacts")
    assert page.text.count('data-testid="artifact-row"') == 1
    assert "main.py" in page.text
    assert "Scripts &lt;b&gt;1&lt;/b&gt;" in page.text
    assert "2 versions" in page.text
    assert "No document artifacts" in (await client.get("/conversations/artifacts?kind=document")).text
    [artifact_id] = set(re.findall(r'href="/conversations/artifacts/([0-9a-f-]{36})"', page.text))
    detail = await client.get(f"/conversations/artifacts/{artifact_id}")
    assert detail.status_code == 200
    assert detail.text.count("/download") >= 3  # the latest, and each of the two versions
    assert "# v2" in detail.text
    download = await client.get(f"/conversations/artifacts/{artifact_id}/download")
    assert download.text == CODE + "# v2\n"
    client.cookies.clear()
    await console_login(client, org.other_member.email)
    assert (await client.get(f"/conversations/artifacts/{artifact_id}")).status_code == 404
    assert (await client.get(f"/conversations/artifacts/{artifact_id}/download")).status_code == 404
    assert (await client.get("/conversations/artifacts/not-an-id")).status_code == 404
