"""Files and artifacts in a browser: the conversation's panel (loaded with htmx, as the conversation
page includes it) uploads a file, a refused one shows why, a file and an artifact are downloaded, and
an artifact's preview shows a hostile answer as text that never runs."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import service as conversations
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from tests.builders import make_account
from tests.conftest import TEST_SECRET
from tests.e2e.test_console import sign_in

CODE = "<script>window.__xss = 1</script>\n" + "print('hello')\n" * 5


async def test_upload_a_file_and_download_an_artifact(
    page: Page, live_server: str, db: AsyncSession, tmp_path: Path
) -> None:
    _account, owner = await make_account(db, name=f"Files {uuid.uuid4().hex[:6]}")
    actor = Actor.for_user(owner)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True,
    )  # fmt: skip
    await providers.create_model(
        db, actor, name="sim", provider_id=provider.id, upstream_model="sim",
        input_price_per_million=Decimal(1), output_price_per_million=Decimal(1),
    )  # fmt: skip
    conversation = await conversations.start_conversation(db, actor, model="sim", title="Scripts")
    asked = await conversations.add_user_message(db, actor, conversation.id, content="Write it")
    await conversations.add_assistant_message(
        db, actor, conversation.id, parent_id=asked.id, content=f"Save as `hello.py`:\n```python\n{CODE}```\n"
    )
    await db.commit()
    alerts: list[str] = []
    page.on("dialog", lambda d: alerts.append(d.message))

    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/conversations/{conversation.id}")
    # The conversation page loads its files panel.
    panel = page.locator("#files-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_test_id("files-empty")).to_be_visible()

    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nShip on Friday.\n")
    await panel.get_by_test_id("file-input").set_input_files(str(notes))
    await panel.get_by_role("button", name="Upload").click()
    await expect(page.get_by_test_id("files-notice")).to_contain_text("notes.md")
    await expect(page.get_by_test_id("file-row")).to_have_count(1)

    drawing = tmp_path / "drawing.svg"
    drawing.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>')
    await page.get_by_test_id("file-input").set_input_files(str(drawing))
    await page.locator("#files-panel").get_by_role("button", name="Upload").click()
    await expect(page.get_by_test_id("files-error")).to_contain_text("drawing.svg")
    await expect(page.get_by_test_id("file-row")).to_have_count(1)

    async with page.expect_download() as downloading:
        await page.get_by_test_id("file-row").get_by_role("link", name="Download").click()
    download = await downloading.value
    assert download.suggested_filename == "notes.md"
    assert await asyncio.to_thread(Path(await download.path()).read_text) == "# Notes\n\nShip on Friday.\n"

    # The artifact: previewed as text, downloaded from the page of all artifacts.
    row = page.get_by_test_id("artifact-row")
    await row.locator("summary").click()
    await expect(row.get_by_test_id("artifact-preview")).to_contain_text("<script>window.__xss = 1</script>")
    await page.goto(f"{live_server}/conversations/artifacts")
    await expect(page.get_by_test_id("artifact-row")).to_contain_text("hello.py")
    async with page.expect_download() as downloading:
        await page.get_by_test_id("artifact-row").locator("summary").click()
        await page.get_by_test_id("artifact-row").get_by_role("link", name="Download").click()
    download = await downloading.value
    assert download.suggested_filename == "hello.py"
    assert await asyncio.to_thread(Path(await download.path()).read_text) == CODE
    assert await page.evaluate("window.__xss") is None
    assert alerts == []
