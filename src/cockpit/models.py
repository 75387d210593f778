"""Every ORM model, imported once so that the metadata is complete (Alembic, tests)."""

from cockpit.agents.models import Agent
from cockpit.analytics.rollup_models import UsageRollup, UsageRollupAccount, UsageRollupState
from cockpit.audit.models import AuditEntry
from cockpit.auth.models import ApiToken, LoginFailure, LoginSession
from cockpit.billing import models as billing_models
from cockpit.conversations.models import Conversation, ConversationMessage
from cockpit.credits.models import CreditCycle, CreditRequest, GroupBudget, LedgerEntry, MemberAllocation
from cockpit.events.models import PlatformEvent
from cockpit.exports.models import Export
from cockpit.groups.models import Group
from cockpit.imports.models import ImportJob
from cockpit.integrations.models import Integration, IntegrationToken
from cockpit.invitations.models import Invitation
from cockpit.jobs.models import Job
from cockpit.kit.db import Base
from cockpit.notifications import models as notifications_models
from cockpit.policies.models import AccessPolicy, PolicyDefaults
from cockpit.projects.models import Project, ProjectMember
from cockpit.providers.models import Model, Provider
from cockpit.tenancy.models import Account, AuditChainHead
from cockpit.tickets import models as tickets_models
from cockpit.usage.models import UsageRecord
from cockpit.users.models import User
from cockpit.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "AccessPolicy",
    "Account",
    "Agent",
    "ApiToken",
    "AuditChainHead",
    "AuditEntry",
    "Conversation",
    "ConversationMessage",
    "CreditCycle",
    "CreditRequest",
    "Export",
    "Group",
    "GroupBudget",
    "ImportJob",
    "Integration",
    "IntegrationToken",
    "Invitation",
    "Job",
    "LedgerEntry",
    "LoginFailure",
    "LoginSession",
    "MemberAllocation",
    "Model",
    "PlatformEvent",
    "PolicyDefaults",
    "Project",
    "ProjectMember",
    "Provider",
    "UsageRecord",
    "UsageRollup",
    "UsageRollupAccount",
    "UsageRollupState",
    "User",
    "billing_models",
    "metadata",
    "notifications_models",
    "tickets_models",
    "webhooks_models",
]
