"""The interactive API docs at /api/docs, served from the vendored Swagger UI (no internet needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

# Keep in step with SWAGGER_UI_VERSION in scripts/vendor_assets.sh, which vendors these files.
SWAGGER_UI_VERSION = "5.36.0"
SWAGGER_JS = f"/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}.bundle.js"
SWAGGER_CSS = f"/static/vendor/swagger-ui-{SWAGGER_UI_VERSION}.css"

router = APIRouter(include_in_schema=False)


@router.get("/api/docs")
async def api_docs(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} — docs",
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url="/static/img/favicon.svg",
        # No "valid spec" badge: it would send the spec's URL to an outside validator.
        swagger_ui_parameters={"validatorUrl": None},
    )
