"""Background jobs of webhooks: imported by ``cockpit.tasks`` so that every worker knows them.

- the platform events' subscriber ``webhooks``: each event becomes one delivery per subscribed
  endpoint, its first attempt queued (in the fan-out's transaction);
- ``webhooks.deliver``: one attempt at one delivery (see ``delivery.py``). Its own retries (a crash,
  the database unavailable) are the queue's; a receiver's failure is not an error of the job: it is
  recorded and the next attempt is queued on the webhook retry schedule.
"""

from __future__ import annotations

from cockpit.events import service as events
from cockpit.jobs.registry import registry
from cockpit.webhooks import service
from cockpit.webhooks.delivery import deliver

events.subscribe("webhooks", service.on_event)
registry.register(service.DELIVER, deliver, max_attempts=3)
