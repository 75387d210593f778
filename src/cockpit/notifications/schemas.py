"""Pydantic shapes of notifications' API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.notifications.rendering import MAX_SOURCE


class NotificationOut(OutputSchema):
    id: uuid.UUID
    event: str
    title: str
    body: str
    link: str | None
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationOut]
    unread_count: int
    meta: PageMeta


class MarkRead(InputSchema):
    ids: list[uuid.UUID] | None = Field(default=None, max_length=500)
    all: bool = False


class MarkedRead(BaseModel):
    marked: int
    unread_count: int


class Variable(BaseModel):
    name: str
    description: str


class TemplateOut(BaseModel):
    event: str
    label: str
    description: str
    channel: str
    subject: str
    body: str
    enabled: bool
    recipients: list[str]
    addresses: list[str]
    default: bool
    mandatory: bool
    updated_at: datetime | None
    variables: list[Variable]


class TemplateList(BaseModel):
    items: list[TemplateOut]


class TemplateSaved(TemplateOut):
    warnings: list[str] = []


class TemplateChange(InputSchema):
    subject: str | None = Field(default=None, max_length=MAX_SOURCE)
    body: str | None = Field(default=None, max_length=MAX_SOURCE)
    enabled: bool | None = None
    recipients: list[str] | None = Field(default=None, max_length=3)
    addresses: list[str] | None = Field(default=None, max_length=20)


class PreviewIn(InputSchema):
    subject: str = Field(default="", max_length=MAX_SOURCE)
    body: str = Field(default="", max_length=MAX_SOURCE)


class PreviewOut(BaseModel):
    subject: str
    body: str
    error: str | None
    line: int | None
    warnings: list[str]


class Preferences(BaseModel):
    muted: list[str]
    mandatory: list[str]


class PreferencesIn(InputSchema):
    muted: list[str] = Field(max_length=100)
