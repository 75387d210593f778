"""What each role may do: the one place that maps roles to permissions."""

from __future__ import annotations

from enum import StrEnum

from cockpit.authz.roles import UserRole


class Permission(StrEnum):
    account_read = "account:read"
    account_write = "account:write"
    audit_read = "audit:read"
    tokens_own = "tokens:own"  # create, list and revoke one's own API tokens
    tokens_manage = "tokens:manage"  # list and revoke anyone's tokens in the account
    users_read = "users:read"
    users_write = "users:write"
    owners_manage = "owners:manage"  # grant or remove the owner role
    projects_manage = "projects:manage"  # every project of the account (project admins manage theirs)
    providers_manage = "providers:manage"  # providers and the model catalogue
    usage_read_all = "usage:read_all"  # every gateway call of the account (members see their own)
    credits_own = "credits:own"  # see one's own allocation and statement, ask for extra credits
    credits_manage = "credits:manage"  # credit settings, cycles, budgets, allocations, requests
    policies_manage = "policies:manage"  # access policies, their defaults, anyone's effective access
    agents_manage = "agents:manage"  # every agent of the account (project members manage their project's)
    integrations_manage = "integrations:manage"  # the integrations catalogue and its credentials
    # Read the account's conversations when the account allows review (each opening is audited).
    conversations_review = "conversations:review"
    jobs_manage = "jobs:manage"  # the account's jobs and their executions (run now, retry, enable)
    notifications_manage = "notifications:manage"  # notification templates and webhooks
    support_manage = "support:manage"  # the support queue: every ticket, assign, reply, notes


_MEMBER = frozenset({Permission.account_read, Permission.tokens_own, Permission.credits_own})
_ADMIN = _MEMBER | {
    Permission.account_write,
    Permission.audit_read,
    Permission.tokens_manage,
    Permission.users_read,
    Permission.users_write,
    Permission.projects_manage,
    Permission.providers_manage,
    Permission.usage_read_all,
    Permission.credits_manage,
    Permission.policies_manage,
    Permission.agents_manage,
    Permission.integrations_manage,
    Permission.conversations_review,
    Permission.jobs_manage,
    Permission.notifications_manage,
    Permission.support_manage,
}
_OWNER = _ADMIN | {Permission.owners_manage}

ROLE_PERMISSIONS: dict[UserRole, frozenset[Permission]] = {
    UserRole.owner: frozenset(_OWNER),
    UserRole.admin: frozenset(_ADMIN),
    UserRole.member: _MEMBER,
}


def permissions_of(role: UserRole) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]
