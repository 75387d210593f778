# ruff: noqa: E501 — a catalogue of texts: one event per block reads better than strings cut mid-sentence
"""Every platform event that can notify: its name (as webhooks and templates know it), what it means,
the variables its templates may use (with sample values for previews), who hears about it by
default, and whether a person may mute it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Who receives an event's notifications (a template may change the list).
PERSON = "person"  # the person concerned (the requester, the invitee, the member over budget)
GROUP_ADMINS = "group_admins"  # the administrators of that person's group (or the event's group)
ACCOUNT_ADMINS = "account_admins"  # the account's owners and administrators
RECIPIENTS = (PERSON, GROUP_ADMINS, ACCOUNT_ADMINS)

COMMON = {
    "account_name": "The organisation's name",
    "event_time": "When it happened (the account's time zone)",
    "console_url": "The address of the Cockpit console",
}


@dataclass(frozen=True)
class EventSpec:
    name: str
    label: str
    description: str
    variables: dict[str, str]
    sample: dict[str, Any]
    recipients: tuple[str, ...] = (ACCOUNT_ADMINS,)
    mandatory: bool = False  # cannot be muted (security, money a person must know about)
    subject: str = ""  # the default subject (Jinja2, sandboxed)
    body: str = ""  # the default body
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_variables(self) -> dict[str, str]:
        return {**COMMON, **self.variables}


def _spec(
    name: str, label: str, description: str, variables: dict[str, str], sample: dict[str, Any], *,
    recipients: tuple[str, ...] = (ACCOUNT_ADMINS,), mandatory: bool = False, subject: str, body: str,
) -> EventSpec:  # fmt: skip
    return EventSpec(name, label, description, variables, sample, recipients, mandatory, subject, body)


_PERSON_VARS = {"person_name": "The person's name", "person_email": "The person's e-mail address"}
_PERSON_SAMPLE = {"person_name": "Ada Lovelace", "person_email": "ada@example.com"}

EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "invitation.sent",
            "Invitation sent",
            "Someone was invited to the organisation.",
            {**_PERSON_VARS, "invited_by": "Who sent the invitation", "expires_at": "When the link expires"},
            {**_PERSON_SAMPLE, "invited_by": "Olivia Owner", "expires_at": "13 Dec 2026"},
            subject="{{ person_email }} was invited to {{ account_name }}",
            body="{{ invited_by }} invited {{ person_email }} to {{ account_name }}. The invitation "
            "expires on {{ expires_at }}.",
        ),
        _spec(
            "invitation.accepted",
            "Invitation accepted",
            "An invited person joined the organisation.",
            _PERSON_VARS,
            _PERSON_SAMPLE,
            subject="{{ person_name }} joined {{ account_name }}",
            body="{{ person_name }} ({{ person_email }}) accepted the invitation and joined {{ account_name }}.",
        ),
        _spec(
            "user.deactivated",
            "User deactivated",
            "A person's access was turned off.",
            {**_PERSON_VARS, "deactivated_by": "Who deactivated them"},
            {**_PERSON_SAMPLE, "deactivated_by": "Olivia Owner"},
            recipients=(PERSON, ACCOUNT_ADMINS),
            mandatory=True,
            subject="{{ person_name }} was deactivated",
            body="{{ deactivated_by }} deactivated {{ person_name }} ({{ person_email }}) in {{ account_name }}.",
        ),
        _spec(
            "credit_request.created",
            "Credit request filed",
            "A member asked for extra credits.",
            {**_PERSON_VARS, "amount": "Credits asked for", "reason": "The reason given"},
            {**_PERSON_SAMPLE, "amount": "500", "reason": "A customer demo on Friday"},
            recipients=(GROUP_ADMINS, ACCOUNT_ADMINS),
            subject="{{ person_name }} asks for {{ amount }} credits",
            body="{{ person_name }} asked for {{ amount }} extra credits: “{{ reason }}”. Review it in "
            "Credits & Allocations → Requests.",
        ),
        _spec(
            "credit_request.approved",
            "Credit request approved",
            "A request for extra credits was approved.",
            {
                **_PERSON_VARS,
                "amount": "Credits granted",
                "decided_by": "Who approved it",
                "note": "Their note",
            },
            {
                **_PERSON_SAMPLE,
                "amount": "500",
                "decided_by": "Olivia Owner",
                "note": "Good luck with the demo",
            },
            recipients=(PERSON,),
            subject="Your request for {{ amount }} credits was approved",
            body="{{ decided_by }} approved {{ amount }} extra credits for you.{% if note %} “{{ note }}”{% endif %}",
        ),
        _spec(
            "credit_request.denied",
            "Credit request denied",
            "A request for extra credits was denied.",
            {
                **_PERSON_VARS,
                "amount": "Credits asked for",
                "decided_by": "Who denied it",
                "note": "Their note",
            },
            {**_PERSON_SAMPLE, "amount": "500", "decided_by": "Olivia Owner", "note": "Not this cycle"},
            recipients=(PERSON,),
            subject="Your request for {{ amount }} credits was denied",
            body="{{ decided_by }} denied your request for {{ amount }} credits.{% if note %} “{{ note }}”{% endif %}",
        ),
        _spec(
            "credit_request.auto_approved",
            "Credit request auto-approved",
            "A request within the automatic approval limit was granted at once.",
            {**_PERSON_VARS, "amount": "Credits granted"},
            {**_PERSON_SAMPLE, "amount": "100"},
            recipients=(PERSON, GROUP_ADMINS),
            subject="{{ amount }} extra credits granted to {{ person_name }}",
            body="{{ person_name }}'s request for {{ amount }} credits was within the automatic limit and "
            "was granted.",
        ),
        _spec(
            "budget.threshold_crossed",
            "Budget threshold crossed",
            "The account, a group or a member used a set share of its credits this cycle.",
            {
                "scope": "account, group or member",
                "scope_name": "The account's, group's or member's name",
                "threshold": "The percentage crossed (e.g. 80)",
                "used": "Credits used this cycle",
                "budget": "Credits of the cycle",
            },
            {"scope": "group", "scope_name": "Support", "threshold": 80, "used": "8,012", "budget": "10,000"},
            recipients=(PERSON, GROUP_ADMINS, ACCOUNT_ADMINS),
            mandatory=True,
            subject="{{ scope_name }} used {{ threshold }}% of its credits",
            body="{{ scope_name }} ({{ scope }}) has used {{ used }} of {{ budget }} credits this cycle: "
            "{{ threshold }}% of its budget.",
        ),
        _spec(
            "cycle.reset",
            "Credit cycle started",
            "A new credit cycle began: allocations are renewed.",
            {"starts_at": "The cycle's first day", "ends_at": "The cycle's last day"},
            {"starts_at": "1 Jan 2027", "ends_at": "31 Jan 2027"},
            subject="A new credit cycle began in {{ account_name }}",
            body="The credit cycle from {{ starts_at }} to {{ ends_at }} began; allocations are renewed.",
        ),
        _spec(
            "policy.changed",
            "Access policy changed",
            "An access rule was added, changed or removed.",
            {
                "change": "added, changed or removed",
                "rule": "The rule, in words",
                "changed_by": "Who changed it",
            },
            {"change": "added", "rule": "Support may not use claude-sonnet-4", "changed_by": "Olivia Owner"},
            subject="Access rule {{ change }}: {{ rule }}",
            body="{{ changed_by }} {{ change }} an access rule: {{ rule }}.",
        ),
        _spec(
            "integration.failing",
            "Integration failing",
            "Calls to an integration keep failing.",
            {"integration": "The integration's name", "error": "The last error"},
            {"integration": "Order desk", "error": "TLS handshake failed"},
            subject="The integration {{ integration }} is failing",
            body="Calls to {{ integration }} fail: {{ error }}.",
        ),
        _spec(
            "job.failed",
            "Background job failed",
            "A background job gave up after its last attempt.",
            {"job": "The job's kind", "error": "The last error", "attempts": "How many times it was tried"},
            {"job": "exports.build", "error": "disk full", "attempts": 5},
            subject="A background job failed: {{ job }}",
            body="The job {{ job }} failed after {{ attempts }} attempts: {{ error }}.",
        ),
        _spec(
            "export.ready",
            "Export ready",
            "An export asked for is ready to download.",
            {**_PERSON_VARS, "export_name": "What was exported", "download_url": "Where to download it"},
            {
                **_PERSON_SAMPLE,
                "export_name": "Cost tracking, last 30 days (PDF)",
                "download_url": "https://cockpit.example.com/exports/1",
            },
            recipients=(PERSON,),
            subject="Your export is ready: {{ export_name }}",
            body="{{ export_name }} is ready: {{ download_url }}",
        ),
        _spec(
            "report.ready",
            "Scheduled report ready",
            "The organisation's weekly or monthly cost report was made.",
            {
                "report_name": "The report (view, period, format)",
                "period": "The period it covers",
                "download_url": "Where to download it (administrators)",
            },
            {
                "report_name": "Cost tracking, 30 Nov 2026 to 6 Dec 2026 (PDF)",
                "period": "30 Nov 2026 to 6 Dec 2026",
                "download_url": "https://cockpit.example.com/exports/1/download",
            },
            recipients=(ACCOUNT_ADMINS,),
            subject="Your cost report is ready: {{ period }}",
            body="The scheduled cost report of {{ account_name }} for {{ period }} is ready: {{ download_url }}",
        ),
        _spec(
            "ticket.created",
            "Support ticket filed",
            "A member filed a support ticket.",
            {
                **_PERSON_VARS,
                "ticket_number": "The ticket's number",
                "subject": "Its subject",
                "category": "Its category",
                "priority": "Its priority",
            },
            {
                **_PERSON_SAMPLE,
                "ticket_number": 42,
                "subject": "Cannot use claude-sonnet-4",
                "category": "access",
                "priority": "normal",
            },
            recipients=(PERSON, ACCOUNT_ADMINS),
            subject="Ticket #{{ ticket_number }}: {{ subject }}",
            body="{{ person_name }} filed ticket #{{ ticket_number }} ({{ category }}, {{ priority }}): {{ subject }}",
        ),
        _spec(
            "ticket.replied",
            "Support ticket replied",
            "Someone replied to a support ticket.",
            {
                **_PERSON_VARS,
                "ticket_number": "The ticket's number",
                "subject": "Its subject",
                "author": "Who replied",
                "reply": "The reply",
            },
            {
                **_PERSON_SAMPLE,
                "ticket_number": 42,
                "subject": "Cannot use claude-sonnet-4",
                "author": "Olivia Owner",
                "reply": "Your group may use it now.",
            },
            recipients=(PERSON,),
            subject="Re: ticket #{{ ticket_number }}: {{ subject }}",
            body="{{ author }} replied to ticket #{{ ticket_number }}:\n\n{{ reply }}",
        ),
        _spec(
            "ticket.status_changed",
            "Support ticket status changed",
            "A support ticket changed status.",
            {
                **_PERSON_VARS,
                "ticket_number": "The ticket's number",
                "subject": "Its subject",
                "status": "Its new status",
                "changed_by": "Who changed it",
            },
            {
                **_PERSON_SAMPLE,
                "ticket_number": 42,
                "subject": "Cannot use claude-sonnet-4",
                "status": "resolved",
                "changed_by": "Olivia Owner",
            },
            recipients=(PERSON,),
            subject="Ticket #{{ ticket_number }} is {{ status }}",
            body="{{ changed_by }} set ticket #{{ ticket_number }} ({{ subject }}) to {{ status }}.",
        ),
        _spec(
            "webhook.disabled",
            "Webhook disabled",
            "A webhook endpoint kept failing and was turned off.",
            {"url": "The endpoint's address", "failures": "Consecutive failed deliveries"},
            {"url": "https://hooks.example.com/cockpit", "failures": 20},
            mandatory=True,
            subject="A webhook endpoint was disabled",
            body="Cockpit turned off the webhook endpoint {{ url }} after {{ failures }} failed deliveries "
            "in a row. Fix the receiver, then enable it again.",
        ),
    )
}


def spec_of(name: str) -> EventSpec:
    """The event of this name (KeyError for an unknown one: a programming error)."""
    return EVENTS[name]
