"""The guided agent wizard in a browser, offline with the simulated provider: describe the agent, get
the draft in the form, send one preview message and see the answer, publish, land on the agent."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.authz.actor import Actor
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from tests.builders import make_account
from tests.conftest import TEST_SECRET
from tests.e2e.test_console import sign_in

DESCRIPTION = "Help our support team answer customers about delivery times, politely and briefly."


async def _no_sideways_scroll(page: Page) -> None:
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"


async def test_describe_draft_preview_and_publish(page: Page, live_server: str, db: AsyncSession) -> None:
    account, owner = await make_account(db, name="Wizard in a Browser")
    actor = Actor.for_user(owner)
    provider = await providers.create_provider(
        db, actor, name="Simulated", kind=ProviderKind.simulated, secret_key=TEST_SECRET, allow_private=True,
        settings={"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 30},
    )  # fmt: skip
    await providers.create_model(
        db, actor, name="sim-chat", provider_id=provider.id, upstream_model="sim-chat",
        input_price_per_million=Decimal(1), output_price_per_million=Decimal(2),
    )  # fmt: skip
    await db.commit()

    await sign_in(page, live_server, owner.email)
    await expect(page).to_have_url(f"{live_server}/")
    await page.goto(f"{live_server}/agents")
    await page.get_by_role("link", name="Guided wizard").click()
    await expect(page).to_have_url(f"{live_server}/agents/wizard")
    await page.get_by_label("What should the agent do, and for whom?").fill(DESCRIPTION)
    await page.locator("select[name=model]").select_option("sim-chat")
    await page.get_by_role("button", name="Draft the agent").click()

    # The draft, in the full form.
    await expect(page.get_by_test_id("draft-note")).to_contain_text("charged to you")
    form = page.locator("#agent-form")
    await expect(form.locator("input[name=name]")).not_to_have_value("")
    await expect(form.locator("textarea[name=instructions]")).to_contain_text(DESCRIPTION)
    await expect(form.locator("select[name=model] option:checked")).to_have_text("sim-chat")
    await page.wait_for_load_state()  # htmx and Alpine handle what follows

    # The form and the chat side by side on a wide screen, stacked on a phone; never sideways.
    await page.set_viewport_size({"width": 1440, "height": 900})
    await _no_sideways_scroll(page)
    form_box, chat_box = await form.bounding_box(), await page.locator("#preview").bounding_box()
    assert form_box
    assert chat_box
    assert chat_box["x"] > form_box["x"] + form_box["width"] - 1
    await page.set_viewport_size({"width": 390, "height": 844})
    await _no_sideways_scroll(page)
    form_box, chat_box = await form.bounding_box(), await page.locator("#preview").bounding_box()
    assert form_box
    assert chat_box
    assert chat_box["y"] >= form_box["y"] + form_box["height"] - 1

    # One preview message: the answer is appended to the chat and the box is emptied.
    chat = page.locator("#preview-form")
    await chat.locator("textarea[name=message]").fill("<b>When</b> will my parcel arrive?")
    await chat.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("preview-answer")
    await expect(answer).to_have_count(1)
    await expect(answer.locator(".chat-text")).not_to_be_empty()
    await expect(page.get_by_test_id("preview-question")).to_have_text(
        re.compile(r"<b>When</b> will my parcel")
    )
    await expect(chat.locator("textarea[name=message]")).to_have_value("")

    # Publish: the agent is created and its page opens with a message. The name's live check
    # answers first (it re-renders the lines above the button: a click during it could miss).
    async with page.expect_response(lambda r: "/agents/check" in r.url):
        await form.locator("input[name=name]").fill("Delivery helper")
    await expect(page.locator("#agent-live-check")).to_contain_text("Everything looks right")
    await page.get_by_role("button", name="Publish agent").click()
    await expect(page).to_have_url(re.compile(rf"{re.escape(live_server)}/agents/[0-9a-f-]{{36}}$"))
    await expect(page.locator(".banner-success")).to_contain_text("Agent “Delivery helper” published.")
    await db.commit()
    agent = await db.scalar(select(Agent).where(Agent.account_id == account.id))
    assert agent is not None
    assert agent.name == "Delivery helper"
    assert DESCRIPTION in agent.instructions
    assert page.url.endswith(f"/agents/{agent.id}")
