"""An OpenAPI document fetched from the address an administrator gave (when none was uploaded).

The address is checked like every upstream (``kit.urls``: no link-local, metadata or — unless
allowed — private addresses), redirects are not followed (they could lead anywhere), the answer is
read up to ``MAX_DOCUMENT_BYTES`` under a timeout. Only JSON is read: no YAML parser is installed,
and a YAML document gets a message saying so.

The service's base URL is the document's ``servers[0].url`` resolved against the document's own
address (OpenAPI 3: a relative server URL is relative to where the document is served; no servers
means "/"). The stored document gets that absolute URL as its first server, so that it means the
same wherever it is read from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from cockpit.integrations import client
from cockpit.integrations.schemas import MAX_DOCUMENT_BYTES, check_document
from cockpit.kit.errors import InvalidInput
from cockpit.kit.urls import check_upstream_url_async

YAML_TYPES = ("yaml", "yml")


@dataclass(frozen=True)
class FetchedDocument:
    document: dict[str, Any]
    base_url: str


def _invalid(message: str, code: str = "openapi_document_unavailable") -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": "url", "message": message}])


def _looks_like_yaml(url: str, content_type: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith((".yaml", ".yml")) or any(t in content_type.lower() for t in YAML_TYPES)


async def fetch_openapi_document(url: str, *, allow_private: bool, timeout_seconds: float) -> FetchedDocument:
    """The document at ``url`` and the service's base URL; InvalidInput (field ``url``) saying what
    went wrong otherwise."""
    try:
        url = await check_upstream_url_async(url.strip(), allow_private=allow_private)
    except InvalidInput as exc:
        raise _invalid(exc.message.replace("base URL", "URL"), "invalid_url") from None
    content = bytearray()
    try:
        async with (
            httpx.AsyncClient(
                timeout=timeout_seconds, follow_redirects=False, verify=client.tls_context()
            ) as http,
            http.stream("GET", url, headers={"accept": "application/json"}) as response,
        ):
            status, content_type = response.status_code, response.headers.get("content-type", "")
            if status < 300:
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > MAX_DOCUMENT_BYTES:
                        raise _invalid(
                            f"The OpenAPI document at this URL is larger than "
                            f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB."
                        )
    except httpx.TimeoutException:
        raise _invalid(
            "The OpenAPI document could not be fetched: the server did not answer in time."
        ) from None
    except httpx.HTTPError:
        raise _invalid("The OpenAPI document could not be fetched: the server cannot be reached.") from None
    if 300 <= status < 400:
        raise _invalid(f"The URL redirects (HTTP {status}); give the document's final address or upload it.")
    if status >= 400:
        raise _invalid(f"The OpenAPI document could not be fetched: HTTP {status}.")
    try:
        document = json.loads(bytes(content))
    except ValueError:
        if _looks_like_yaml(url, content_type):
            raise _invalid(
                "The document at this URL is YAML, which this server cannot read: give the URL of its "
                "JSON version or upload the JSON document."
            ) from None
        raise _invalid(
            "The document at this URL is not valid JSON (an OpenAPI 3 document is expected)."
        ) from None
    if not isinstance(document, dict):
        raise _invalid("The document at this URL is not an OpenAPI 3 document.")
    try:
        check_document(document)
    except ValueError as exc:
        raise _invalid(f"The document at this URL is not usable: {exc}.") from None
    return FetchedDocument(document, _with_base(document, url))


def _with_base(document: dict[str, Any], document_url: str) -> str:
    """The service's base URL; the document's first server rewritten to it (absolute)."""
    servers = document.get("servers")
    first = servers[0] if isinstance(servers, list) and servers and isinstance(servers[0], dict) else None
    relative = first.get("url") if first is not None else None
    base = urljoin(document_url, relative if isinstance(relative, str) and relative else "/").rstrip("/")
    if first is not None:
        first["url"] = base
    else:
        document["servers"] = [{"url": base}]
    return base
