"""Password hashing (argon2id) and the password policy.

Hashing and checking a password takes a quarter to half a second of CPU (that is the point of
argon2). Async code uses ``hash_password_async``/``verify_password_async``: the work runs on a
small pool of threads of its own (argon2 releases the interpreter lock), never on the event loop,
where it would hold up every gateway call of the process, and never on the event loop's default
executor, which DNS lookups and other short jobs share. The pool is small on purpose: each hash
takes 64 MiB, and a burst of sign-ins queues for the pool instead of taking every core and the
memory at once. The sync versions are for code that is synchronous anyway (tests' set-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cockpit.kit.errors import InvalidInput

T = TypeVar("T")

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


def _yield_to_the_event_loop() -> None:
    """Hashing threads run at a lower priority (Linux: ``nice`` is per thread, and argon2's own lane
    threads inherit it): when the cores are busy, the event loop, which serves the gateway's calls,
    goes first, and sign-ins take longer instead."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


HASHING_NICENESS = 10
_pool = ThreadPoolExecutor(
    max_workers=max(1, min(4, os.cpu_count() or 1)),
    thread_name_prefix="cockpit-argon2",
    initializer=_yield_to_the_event_loop,
)


async def _off_loop(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


async def hash_password_async(password: str) -> str:
    return await _off_loop(lambda: hash_password(password))


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """Like ``verify_password`` (an unknown user is checked against a dummy hash: same timing)."""
    return await _off_loop(lambda: verify_password(password_hash, password))
