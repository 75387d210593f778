"""The demo's conversations: a few threads of the owner's, so that the Conversations page opens on
something — an agent's answer rendered as Markdown, a code answer kept as an artifact, a branch —
spread over the last days (the sidebar groups them by date). Their answers are written here, not
called: the seeded usage already holds the demo's calls."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.authz.actor import Actor
from cockpit.conversations import service as conversations
from cockpit.kit.time import utcnow

CREDITS_ANSWER = """Here is where your credits stand this cycle:

| | Credits |
|---|---:|
| Monthly allocation | 2,000 |
| Used so far | 1,236 |
| **Left** | **764** |

At your pace of the last 7 days (about 58 credits a day) they last until the end of the cycle.
Ask for more from **Credits & Allocations → Requests** if a project needs it."""

SCRIPT_ANSWER = """This reads the CSV export of the request log and totals the cost per model.
Save it as `monthly_costs.py`:

```python
import csv
from collections import defaultdict
from decimal import Decimal

def costs_by_model(path: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            totals[row["model"]] += Decimal(row["cost_usd"])
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
```

Costs stay `Decimal` so that the totals are exact."""


async def seed_conversations(session: AsyncSession, owner: Actor) -> None:
    now = utcnow()
    threads = [
        ("How many credits do I have left?", "How many credits do I have left?", CREDITS_ANSWER,
         {"agent": "cockpit-helper"}, timedelta(hours=2)),
        ("Monthly cost script", "Write a Python script that totals the request log's cost per model.",
         SCRIPT_ANSWER, {"model": "gpt-4o"}, timedelta(days=1, hours=3)),
    ]  # fmt: skip
    for title, question, answer, target, age in threads:
        conversation = await conversations.start_conversation(session, owner, title=title, **target)
        asked = await conversations.add_user_message(session, owner, conversation.id, content=question)
        await conversations.add_assistant_message(
            session, owner, conversation.id, parent_id=asked.id, content=answer, model=conversation.model,
            input_tokens=len(question) // 4 + 40, output_tokens=len(answer) // 4,
        )  # fmt: skip
        conversation.created_at = conversation.updated_at = now - age
    await session.flush()
