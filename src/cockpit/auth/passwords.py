"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cockpit.kit.errors import InvalidInput

_hasher = PasswordHasher()
# Verifying against this hash when the e-mail is unknown keeps timing the same either way.
_DUMMY_HASH = _hasher.hash("cockpit-dummy-password-for-timing")

MIN_LENGTH = 12
MAX_LENGTH = 256
POLICY = (
    f"Passwords need {MIN_LENGTH} to {MAX_LENGTH} characters and must contain "
    "at least one letter and one digit."
)


def check_policy(password: str, *, field: str = "password") -> None:
    ok = (
        MIN_LENGTH <= len(password) <= MAX_LENGTH
        and any(c.isalpha() for c in password)
        and any(c.isdigit() for c in password)
    )
    if not ok:
        raise InvalidInput("weak_password", POLICY, details=[{"field": field, "message": POLICY}])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
