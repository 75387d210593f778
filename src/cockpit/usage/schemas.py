from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from cockpit.kit.money import plain
from cockpit.kit.pagination import PageMeta
from cockpit.kit.schemas import OutputSchema
from cockpit.usage.queries import RequestRow


class RequestOut(OutputSchema):
    id: uuid.UUID
    created_at: datetime
    model: str
    model_id: uuid.UUID | None
    provider_id: uuid.UUID | None
    provider_kind: str | None
    operation: str
    stream: bool
    status: str
    error_type: str | None
    error_message: str | None
    http_status: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    tokens_estimated: bool
    cost_usd: str = Field(description='Exact decimal in USD, as a string (e.g. "0.0000675")')
    credits: str = Field(
        description='Credits debited for the call (cost x the credit factor); "0" when not tracked'
    )
    latency_ms: int
    ttft_ms: int | None
    user_id: uuid.UUID | None
    user_email: str | None
    group_id: uuid.UUID | None
    project_id: uuid.UUID | None
    project_name: str | None
    agent_id: str | None
    api_token_id: uuid.UUID | None
    upstream_id: str | None

    @classmethod
    def _fields_of(cls, row: RequestRow) -> dict[str, Any]:
        r = row.record
        return {
            "id": r.id,
            "created_at": r.created_at,
            "model": r.model,
            "model_id": r.model_id,
            "provider_id": r.provider_id,
            "provider_kind": r.provider_kind,
            "operation": r.operation,
            "stream": r.stream,
            "status": r.status,
            "error_type": r.error_type,
            "error_message": r.error_message,
            "http_status": r.http_status,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached_tokens": r.cached_tokens,
            "tokens_estimated": r.tokens_estimated,
            "cost_usd": plain(r.cost_usd),
            "credits": plain(r.credits),
            "latency_ms": r.latency_ms,
            "ttft_ms": r.ttft_ms,
            "user_id": r.user_id,
            "user_email": row.user_email,
            "group_id": r.group_id,
            "project_id": r.project_id,
            "project_name": row.project_name,
            "agent_id": r.agent_id,
            "api_token_id": r.api_token_id,
            "upstream_id": r.upstream_id,
        }

    @classmethod
    def of(cls, row: RequestRow) -> RequestOut:
        return cls(**cls._fields_of(row))


class RequestDetail(RequestOut):
    """One call, with its stored input and output (null when not stored or expired)."""

    request_content: dict[str, Any] | None
    response_content: str | None
    content_expires_at: datetime | None

    @classmethod
    def of(cls, row: RequestRow) -> RequestDetail:
        r = row.record
        return cls(
            **cls._fields_of(row),
            request_content=r.request_content,
            response_content=r.response_content,
            content_expires_at=r.content_expires_at,
        )


class RequestPage(OutputSchema):
    items: list[RequestOut]
    meta: PageMeta
