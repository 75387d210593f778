"""Where the bytes of uploaded files live: a small interface and its local-disk implementation.

A file is stored under ``<data_dir>/files/<account id>/<key>``, the key a random hex string chosen
here: a name a person or a program supplied never becomes part of a path. A write goes to a
temporary file beside the final one and is renamed into place (``os.replace``), so that a reader
never sees half a file and a crash leaves no truncated one. The disk work runs in a thread: the event
loop never waits for the disk.

An S3-compatible backend is not offered: Cockpit has no S3 client among its dependencies, and a
hand-rolled request signer is not worth its risk here. ``FileStorage`` is the seam where one would go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import Protocol

from cockpit.config import Settings

_KEY = re.compile(r"[0-9a-f]{32}")


class FileStorage(Protocol):
    async def put(self, account_id: uuid.UUID, data: bytes) -> str:
        """Store ``data``; the key to read it back with."""
        ...

    async def get(self, account_id: uuid.UUID, key: str) -> bytes: ...

    async def delete(self, account_id: uuid.UUID, key: str) -> None: ...


class MissingFile(Exception):
    """The stored bytes are gone (deleted from the disk by hand, another data directory)."""


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, account_id: uuid.UUID, key: str) -> Path:
        # Keys are ours, but a row could be edited by hand: only a key of our own shape is a path.
        if not _KEY.fullmatch(key):
            raise MissingFile(key)
        return self.root / account_id.hex / key

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise

    async def put(self, account_id: uuid.UUID, data: bytes) -> str:
        key = uuid.uuid4().hex
        await asyncio.to_thread(self._write, self._path(account_id, key), data)
        return key

    async def get(self, account_id: uuid.UUID, key: str) -> bytes:
        path = self._path(account_id, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise MissingFile(key) from exc

    async def delete(self, account_id: uuid.UUID, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, MissingFile):
            await asyncio.to_thread(self._path(account_id, key).unlink)


def storage_for(settings: Settings) -> FileStorage:
    return LocalStorage(settings.data_dir / "files")
