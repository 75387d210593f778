"""A CSV uploaded in the browser is imported by the worker that runs inside ``cockpit serve``
(the job queue; no second process), and the page follows its progress to the end."""

from __future__ import annotations

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from tests.builders import make_account
from tests.e2e.test_console import sign_in

CSV = "email,name\ncsv.one@example.com,One\ncsv.two@example.com,Two\nnot-an-email,Bad\n"


async def test_an_uploaded_csv_is_imported_by_the_servers_own_worker(
    page: Page, live_server_with_worker: str, db: AsyncSession
) -> None:
    live_server = live_server_with_worker
    _, owner = await make_account(db, name="Importers Inc")
    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/users/import")
    await page.locator("#import-form input[type=file]").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
    )
    await page.get_by_role("button", name="Start import").click()

    progress = page.locator("#import-progress")
    await expect(progress).to_have_attribute("data-status", "done", timeout=60_000)
    await expect(page.locator("#count-created")).to_have_text("2")
    await expect(page.locator("#count-rejected")).to_have_text("1")
    await expect(page.locator("#import-report")).to_contain_text("not-an-email")
