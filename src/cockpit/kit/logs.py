"""Logs never carry secrets: one-time links' tokens are redacted from access log lines."""

from __future__ import annotations

import logging
import re

# An invitation link's token is its path segment; tokens and keys may also come as query values.
_PATTERNS = (
    (re.compile(r"(/invite/)[^/?#\s\"]+"), r"\1[redacted]"),
    (re.compile(r"([?&](?:token|secret|key|api_key|code)=)[^&#\s\"]+", re.IGNORECASE), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_logs(name: str = "uvicorn.access") -> None:
    """Install the filter on the server's access logger (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
