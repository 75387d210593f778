"""Every background job kind, imported once so that the queue's registry is complete (the worker in
``cockpit worker`` and in ``cockpit serve``); see docs/jobs.md."""

from cockpit.analytics import tasks as analytics_tasks
from cockpit.auth import tasks as auth_tasks
from cockpit.conversations import tasks as conversations_tasks
from cockpit.credits import tasks as credits_tasks
from cockpit.events import service as events_service
from cockpit.exports import reports as exports_reports
from cockpit.exports import tasks as exports_tasks
from cockpit.imports import tasks as imports_tasks
from cockpit.invitations import tasks as invitations_tasks
from cockpit.jobs import tasks as jobs_tasks
from cockpit.jobs.registry import registry
from cockpit.notifications import tasks as notifications_tasks
from cockpit.tickets import tasks as tickets_tasks
from cockpit.usage import tasks as usage_tasks
from cockpit.webhooks import tasks as webhooks_tasks

__all__ = [
    "analytics_tasks",
    "auth_tasks",
    "conversations_tasks",
    "credits_tasks",
    "events_service",
    "exports_reports",
    "exports_tasks",
    "imports_tasks",
    "invitations_tasks",
    "jobs_tasks",
    "notifications_tasks",
    "registry",
    "tickets_tasks",
    "usage_tasks",
    "webhooks_tasks",
]
