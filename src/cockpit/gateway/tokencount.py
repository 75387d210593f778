"""Token counting for metering: exact for OpenAI-family models, an estimate for the rest.

OpenAI-family models are counted with tiktoken's ``cl100k_base`` encoding, built from the BPE file
bundled next to this module (the gateway never downloads anything). Other models get the usual
"four characters per token" estimate. Chat requests follow OpenAI's published counting recipe
(a fixed overhead per message plus the tokens of its fields, plus the reply priming).

All counting functions are pure and never raise on odd request shapes: a request the upstream
would reject still gets a sensible count.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import tiktoken

__all__ = ["count_input", "count_messages", "count_text", "encoding", "is_openai_family"]

_BPE_FILE = Path(__file__).parent / "data" / "cl100k_base.tiktoken"
_BPE_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14.0), function cl100k_base().
_PAT_STR = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

# OpenAI's chat recipe (gpt-3.5-turbo-0613 and later, gpt-4*).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
TOKENS_PER_IMAGE = 85

_IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})

_OPENAI_MODEL = re.compile(
    r"^(?:gpt-|chatgpt-|text-embedding-|o[134](?:-|$)|(?:text-)?davinci|(?:text-)?babbage)",
)

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def _load_ranks() -> dict[bytes, int]:
    """The BPE ranks from the bundled file, after checking its SHA-256 (a corrupted file fails loudly).

    Parsed here rather than with ``tiktoken.load.load_tiktoken_bpe``, which would also copy the
    file into a cache directory under the system's temporary folder."""
    data = _BPE_FILE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != _BPE_SHA256:
        raise ValueError(f"{_BPE_FILE.name} has SHA-256 {digest}, expected {_BPE_SHA256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build_encoding() -> tiktoken.Encoding:
    ranks = _load_ranks()
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_PAT_STR,
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS,
    )


def encoding() -> tiktoken.Encoding:
    """The ``cl100k_base`` encoding, built once per process (thread-safe, safe from a worker thread)."""
    global _encoding
    enc = _encoding
    if enc is None:
        with _lock:
            if _encoding is None:
                _encoding = _build_encoding()
            enc = _encoding
    return enc


def is_openai_family(model: str) -> bool:
    """True for model names counted with tiktoken (GPT, o-series, OpenAI embeddings, fine-tunes of those).

    A provider prefix such as ``openai/gpt-4o`` is ignored, and ``ft:`` fine-tunes count as their base.
    """
    if not isinstance(model, str):
        return False
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:]
    return _OPENAI_MODEL.match(name) is not None


def count_text(text: str, *, model: str) -> int:
    """Tokens in ``text``: tiktoken for OpenAI-family models, otherwise ``round(len / 4)`` (at least 1)."""
    if not isinstance(text, str) or not text:
        return 0
    if is_openai_family(model):
        # disallowed_special=() : "<|endoftext|>" typed by a user is ordinary text, not an error.
        return len(encoding().encode(text, disallowed_special=()))
    return max(1, round(len(text) / 4))


def _count_content(content: Any, model: str) -> int:
    if isinstance(content, str):
        return count_text(content, model=model)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if isinstance(part, str):
            total += count_text(part, model=model)
            continue
        if not isinstance(part, dict):
            continue
        if part.get("type") in _IMAGE_PART_TYPES:
            total += TOKENS_PER_IMAGE
            continue
        for key in ("text", "refusal"):
            value = part.get(key)
            if isinstance(value, str):
                total += count_text(value, model=model)
    return total


def _count_function(call: Any, model: str) -> int:
    if not isinstance(call, dict):
        return 0
    total = 0
    for key in ("name", "arguments"):
        value = call.get(key)
        if isinstance(value, str):
            total += count_text(value, model=model)
    return total


def _count_message(message: Any, model: str) -> int:
    total = TOKENS_PER_MESSAGE
    if not isinstance(message, dict):
        return total
    for key, value in message.items():
        if key == "content":
            total += _count_content(value, model)
        elif key == "tool_calls":
            if isinstance(value, list):
                for call in value:
                    if isinstance(call, dict):
                        total += _count_function(call.get("function"), model)
        elif key == "function_call":
            total += _count_function(value, model)
        elif isinstance(value, str):
            total += count_text(value, model=model)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def count_messages(messages: list[dict[str, Any]], *, model: str) -> int:
    """Prompt tokens of a chat request's ``messages`` (OpenAI's recipe). Never raises; a non-list counts 0."""
    if not isinstance(messages, list):
        return 0
    return sum(_count_message(message, model) for message in messages) + REPLY_PRIMING_TOKENS


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # circular structures; cannot come from JSON, but never raise
        return str(value)


def _count_embedding_input(value: Any, model: str) -> int:
    if isinstance(value, str):
        return count_text(value, model=model)
    if not isinstance(value, list):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count_text(item, model=model)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1  # a token id
        elif isinstance(item, list):
            total += len(item)  # a list of token ids
    return total


def count_input(body: dict[str, Any], *, model: str, operation: str) -> int:
    """Input tokens of a request body: ``operation`` is ``"chat"`` or ``"embedding"``.

    Chat counts the messages plus the JSON of ``tools`` (and legacy ``functions``) when present;
    embedding counts ``input`` (a string, strings, token ids, or lists of token ids).
    """
    if operation not in ("chat", "embedding"):
        raise ValueError(f"Unknown operation {operation!r}: expected 'chat' or 'embedding'.")
    if not isinstance(body, dict):
        return 0
    if operation == "embedding":
        return _count_embedding_input(body.get("input"), model)
    messages = body.get("messages")
    total = count_messages(messages, model=model) if isinstance(messages, list) else 0
    for key in ("tools", "functions"):
        value = body.get(key)
        if value:
            total += count_text(_json_text(value), model=model)
    return total
