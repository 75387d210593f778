import pytest

from cockpit.config import Environment, Settings, normalize_database_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite+aiosqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_url_forms(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_unsupported_database_url_is_refused() -> None:
    with pytest.raises(ValueError, match="COCKPIT_DATABASE_URL"):
        normalize_database_url("mysql://root@localhost/x")


def test_default_database_is_sqlite_under_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path, database_url="")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'cockpit.db'}"


def test_production_requires_secret_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("COCKPIT_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="COCKPIT_SECRET_KEY is required"):
        Settings(env=Environment.production, data_dir=tmp_path)


def test_secret_key_is_generated_once_and_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = Settings(data_dir=tmp_path).resolved_secret_key()
    again = Settings(data_dir=tmp_path).resolved_secret_key()
    assert first == again
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_secure_cookies_follow_base_url() -> None:
    assert Settings(base_url="https://cockpit.example.com").secure_cookies
    assert not Settings(base_url="http://127.0.0.1:8000").secure_cookies
