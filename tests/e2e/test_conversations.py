"""Conversations in a browser, offline with the simulated provider: start one with the default agent,
see the answer stream in and rendered as Markdown, edit an earlier message and switch branches,
regenerate, stop a slow answer, approve a tool call, and a hostile answer that never runs script."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.agents.models import Agent
from cockpit.authz.actor import Actor
from cockpit.conversations import service as conversations
from cockpit.conversations.models import ConversationMessage, MessageStatus
from cockpit.providers import service as providers
from cockpit.providers.models import ProviderKind
from cockpit.tenancy.models import Account
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User, UserRole
from tests.builders import make_account, make_user
from tests.conftest import TEST_SECRET
from tests.e2e.test_console import sign_in

HOSTILE = (
    "Here is **bold** text.\n\n<script>window.__xss = 1</script>\n\n"
    '<img src=x onerror="window.__xss = 2">\n\n'
    "[click me](javascript:window.__xss=3) and ![leak](http://127.0.0.1:9/leak.png)\n\n"
    "```python\nprint('<b>hi</b>')\n```"
)


async def _org(db: AsyncSession) -> tuple[Account, User]:
    account, owner = await make_account(db, name=f"Chat {uuid.uuid4().hex[:6]}")
    actor = Actor.for_user(owner)
    # sim-slow writes for a minute or more: Stop is clicked long before the end, however busy the machine.
    for name, speed, length in (("sim-fast", 0, 60), ("sim-slow", 8, 600)):
        provider = await providers.create_provider(
            db, actor, name=f"Simulated {name}", kind=ProviderKind.simulated, secret_key=TEST_SECRET,
            allow_private=True,
            settings={"latency_ms": 0, "tokens_per_second": speed, "output_tokens": length},
        )  # fmt: skip
        model = await providers.create_model(
            db, actor, name=name, provider_id=provider.id, upstream_model=name,
            input_price_per_million=Decimal(1), output_price_per_million=Decimal(2),
        )  # fmt: skip
        if name == "sim-fast":
            db.add(
                Agent(account_id=account.id, name="Helper", slug="helper", model_id=model.id, is_default=True)
            )
    await db.commit()
    return account, owner


async def _send(page: Page, text: str) -> None:
    form = page.locator("#message-form")
    await form.locator("textarea[name=content]").fill(text)
    await form.get_by_role("button", name="Send").click()


async def test_chat_stream_edit_branch_regenerate(page: Page, live_server: str, db: AsyncSession) -> None:
    _account, owner = await _org(db)
    alerts: list[str] = []
    page.on("dialog", lambda dialog: alerts.append(dialog.message))
    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/conversations")
    form = page.locator("#new-conversation")
    await expect(form.locator("select[name=with] option:checked")).to_have_text("Helper (default)")
    await form.get_by_role("button", name="Start").click()
    await expect(page.locator("#message-form")).to_be_visible()

    await _send(page, "How do plants grow?")
    answers = page.get_by_test_id("message-assistant")
    await expect(answers).to_have_count(1)
    await expect(answers.first.locator(".chat-text.md")).not_to_be_empty()
    # The first exchange names the conversation (a metered call): the sidebar shows the title.
    await page.reload()
    await expect(page.locator(".conv-item.on .conv-item-title")).not_to_have_text("Untitled conversation")

    # Edit the first message and resend: a new branch beside the old one.
    question = page.get_by_test_id("message-user").first
    await question.get_by_test_id("edit-message").locator("summary").click()
    await question.locator("textarea[name=content]").fill("How do trees grow?")
    await question.get_by_role("button", name="Resend").click()
    await expect(page.get_by_test_id("message-user").first.locator(".chat-text")).to_have_text(
        "How do trees grow?"
    )
    switch = page.get_by_test_id("message-user").first.get_by_test_id("branch-switch")
    await expect(switch).to_contain_text("2 / 2")
    await switch.get_by_role("button", name="Previous version").click()
    await expect(page.get_by_test_id("message-user").first.locator(".chat-text")).to_have_text(
        "How do plants grow?"
    )
    await expect(page.get_by_test_id("message-user").first.get_by_test_id("branch-switch")).to_contain_text(
        "1 / 2"
    )

    # Regenerate the answer: a sibling answer, "2 / 2" on it.
    await page.get_by_role("button", name="Regenerate").click()
    await expect(
        page.get_by_test_id("message-assistant").first.get_by_test_id("branch-switch")
    ).to_contain_text("2 / 2")
    assert alerts == []


async def test_a_hostile_answer_never_runs_and_markdown_is_rendered(
    page: Page, live_server: str, db: AsyncSession
) -> None:
    _account, owner = await _org(db)
    actor = Actor.for_user(owner)
    conversation = await conversations.start_conversation(db, actor, model="sim-fast", title="Hostile")
    asked = await conversations.add_user_message(
        db, actor, conversation.id, content="<script>window.__xss=9</script>"
    )
    await conversations.add_assistant_message(db, actor, conversation.id, parent_id=asked.id, content=HOSTILE)
    await db.commit()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/conversations/{conversation.id}")
    answer = page.get_by_test_id("message-assistant")
    await expect(answer.locator("strong")).to_have_text("bold")
    await expect(answer.locator("pre code")).to_contain_text("print('<b>hi</b>')")
    await expect(answer).to_contain_text("<script>window.__xss = 1</script>")
    assert await answer.locator("script, img, iframe, a[href^='javascript']").count() == 0
    await expect(answer.get_by_role("link", name="leak")).to_have_attribute(
        "rel", "noopener noreferrer nofollow"
    )
    assert await page.evaluate("window.__xss") is None
    assert not [u for u in requests if "leak.png" in u]  # an image in an answer is never fetched
    await expect(page.get_by_test_id("message-user")).to_contain_text("<script>window.__xss=9</script>")


async def test_stop_a_slow_answer(page: Page, live_server: str, db: AsyncSession) -> None:
    _account, owner = await _org(db)
    account_id = owner.account_id
    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/conversations")
    form = page.locator("#new-conversation")
    await form.locator("select[name=with]").select_option("model:sim-slow")
    await form.locator("input[name=title]").fill("Slow one")
    await form.get_by_role("button", name="Start").click()
    await _send(page, "Tell me a long story about tea?")
    streaming = page.get_by_test_id("streaming-answer")
    await expect(streaming.locator(".chat-text")).not_to_be_empty()
    await page.get_by_test_id("stop-answer").click()
    kept = page.get_by_test_id("message-assistant")
    await expect(kept).to_contain_text("Stopped.")
    await expect(kept.locator(".chat-text")).not_to_be_empty()
    # The stopped answer keeps what its call is recorded with (the tokens counted by Cockpit).
    stopped = await db.scalar(
        select(ConversationMessage).where(
            ConversationMessage.account_id == account_id, ConversationMessage.status == MessageStatus.stopped
        )
    )
    assert stopped is not None
    tokens, cost = stopped.output_tokens, stopped.cost_usd
    assert tokens > 0
    assert cost > 0
    for _ in range(600):  # the record is written by the recorder's next batch (the bound only stops a hang)
        await db.rollback()
        row = await db.scalar(select(UsageRecord).where(UsageRecord.account_id == account_id))
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None
    assert (row.status, row.output_tokens, row.cost_usd) == (
        "client_disconnected", tokens, cost,
    )  # fmt: skip


async def test_fork_export_search_share_and_review(page: Page, live_server: str, db: AsyncSession) -> None:
    account, owner = await _org(db)
    colleague = await make_user(db, account, role=UserRole.admin)
    account.conversation_review_enabled = True
    await db.commit()
    await sign_in(page, live_server, owner.email)
    await page.goto(f"{live_server}/conversations")
    form = page.locator("#new-conversation")
    await form.locator("input[name=title]").fill("Greenhouse plans")
    await form.get_by_role("button", name="Start").click()
    await _send(page, "How do tomatoes ripen?")
    await expect(page.get_by_test_id("message-assistant")).to_have_count(1)
    await _send(page, "And peppers?")
    await expect(page.get_by_test_id("message-assistant")).to_have_count(2)
    original = page.url

    # Branch into a new thread from the first answer: a copy up to it; the original is unchanged.
    await page.get_by_test_id("message-assistant").first.get_by_test_id("fork").click()
    await expect(page.get_by_role("heading", name="Greenhouse plans (branch)")).to_be_visible()
    await expect(page.get_by_test_id("message-user")).to_have_count(1)
    assert page.url != original
    await page.goto(original)
    await expect(page.get_by_test_id("message-user")).to_have_count(2)

    # Export as Markdown.
    await page.locator("summary", has_text="Export").click()
    async with page.expect_download() as downloading:
        await page.get_by_test_id("export-md").click()
    download = await downloading.value
    assert download.suggested_filename.endswith(".md")
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    assert "How do tomatoes ripen?" in text
    assert "And peppers?" in text

    # Search finds the message.
    await page.locator("input[name=q]").fill("peppers")
    await page.locator("input[name=q]").press("Enter")
    hit = page.get_by_test_id("search-hit")
    await expect(hit).to_have_count(1)
    await expect(hit.locator("mark")).to_have_text("peppers")

    # Share with a colleague, who reads it (read-only) under "Shared with me".
    await page.goto(original)
    await page.get_by_test_id("share-open").click()
    panel = page.get_by_test_id("share-panel")
    await expect(panel).to_be_visible()
    await panel.locator("select[name=user_id]").select_option(str(colleague.id))
    await panel.get_by_role("button", name="Share").click()
    await expect(page.get_by_test_id("share-list")).to_contain_text(colleague.email)

    other = await page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        reader = await other.new_page()
        await sign_in(reader, live_server, colleague.email)
        await reader.goto(f"{live_server}/conversations/shared")
        await reader.get_by_test_id("shared-list").get_by_text("Greenhouse plans").first.click()
        await expect(reader.get_by_text("And peppers?")).to_be_visible()
        assert await reader.locator("#message-form").count() == 0  # read-only
        # As an administrator with review on, the colleague reviews another conversation: recorded
        # and shown to its owner.
        await reader.goto(f"{live_server}/conversations/review")
        await expect(reader.get_by_text("Greenhouse plans (branch)")).to_be_visible()
        await reader.get_by_text("Greenhouse plans (branch)").click()
        await expect(reader.get_by_text("How do tomatoes ripen?")).to_be_visible()
    finally:
        await other.close()
    await page.goto(f"{live_server}/conversations")
    await page.get_by_text("Greenhouse plans (branch)").click()
    await expect(page.get_by_test_id("reviewed-note")).to_contain_text("Reviewed by")
