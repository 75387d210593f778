from httpx import AsyncClient


async def test_healthz_and_readyz(client: AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_readyz_reports_unreachable_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from httpx import ASGITransport

    from cockpit.app import create_app
    from tests.conftest import make_settings

    # A PostgreSQL port where nothing listens: the database is not reachable.
    app = create_app(make_settings("postgresql+asyncpg://nobody@127.0.0.1:1/none", tmp_path))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_openapi_and_docs_are_served(client: AsyncClient) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/tokens" in spec["paths"]
    assert "/api/v1/audit" in spec["paths"]
    assert not any(path.startswith("/login") for path in spec["paths"])
    docs = await client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/v1/openapi.json" in docs.text
