"""/api/docs works with no internet: its page names only this server's assets, and they are served."""

from __future__ import annotations

import re

from httpx import AsyncClient

from cockpit.api_docs import SWAGGER_CSS, SWAGGER_JS


async def test_api_docs_load_only_local_assets(client: AsyncClient) -> None:
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    referenced = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert SWAGGER_JS in referenced
    assert SWAGGER_CSS in referenced
    assert all(url.startswith("/") and not url.startswith("//") for url in referenced), referenced
    assert "http://" not in docs.text
    assert "https://" not in docs.text
    assert "'/api/v1/openapi.json'" in docs.text

    js = await client.get(SWAGGER_JS)
    assert js.status_code == 200
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "SwaggerUIBundle" in js.text
    css = await client.get(SWAGGER_CSS)
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert ".swagger-ui" in css.text
