"""Answers rendered as Markdown (console.markdown): what a model or a tool writes can format text,
never inject markup, script, a dangerous link or an image that fetches an outside address."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.console.markdown import HIGHLIGHT_MAX, RENDER_MAX, render_markdown


def test_formatting_is_rendered() -> None:
    html = str(render_markdown("# Plan\n\n- **one**\n- `two`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~"))
    assert "<h1>Plan</h1>" in html
    assert "<li><strong>one</strong></li>" in html
    assert "<code>two</code>" in html
    assert "<table>" in html
    assert "<td>1</td>" in html
    assert "<s>old</s>" in html


def test_code_is_highlighted_and_escaped() -> None:
    html = str(render_markdown('```python\ndef f():\n    return "<b>x</b>"\n```'))
    assert '<pre><code class="language-python">' in html
    assert '<span class="hl-k">def</span>' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>" not in html
    unknown = str(render_markdown("```nosuchlanguage\n<i>raw</i>\n```"))
    assert "&lt;i&gt;raw&lt;/i&gt;" in unknown
    assert "<i>" not in unknown
    huge = str(render_markdown("```python\n" + "x = '<b>'\n" * (HIGHLIGHT_MAX // 8) + "```"))
    assert "hl-" not in huge
    assert "<b>" not in huge


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<iframe src=https://evil.example></iframe>",
        '<a href="javascript:alert(1)">x</a>',
        "<svg/onload=alert(1)>",
        "<style>body{display:none}</style>",
    ],
)
def test_raw_html_is_text(hostile: str) -> None:
    html = str(render_markdown(f"before {hostile} after"))
    assert hostile not in html
    assert "&lt;" in html


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[x](file:///etc/passwd)",
        "<javascript:alert(1)>",
    ],
)
def test_dangerous_links_are_not_links(link: str) -> None:
    html = str(render_markdown(link))
    assert "href" not in html


def test_links_open_apart_and_images_are_never_fetched() -> None:
    html = str(render_markdown("[docs](https://example.com/a?b=1) ![secret](https://evil.example/?q=data)"))
    assert (
        '<a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer nofollow">docs</a>'
        in html
    )
    assert "<img" not in html  # the image's address is a link the person may choose to follow
    assert 'href="https://evil.example/?q=data"' in html


def test_a_very_long_answer_is_escaped_text() -> None:
    text = "<b>x</b> " * (RENDER_MAX // 8)
    html = str(render_markdown(text))
    assert html.startswith("<p>&lt;b&gt;")
    assert "<b>" not in html


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("<>\"'`*_[]()!#|-\n&;:/"), max_size=300)
)
def test_no_tag_comes_from_the_text(text: str) -> None:
    """Whatever the text, every "<" in the output opens a tag of the renderer's small vocabulary."""
    html = str(render_markdown(text))
    allowed = {
        "p", "/p", "h1", "/h1", "h2", "/h2", "h3", "/h3", "h4", "/h4", "h5", "/h5", "h6", "/h6",
        "strong", "/strong", "em", "/em", "code", "/code", "pre", "/pre", "ul", "/ul", "ol", "/ol",
        "li", "/li", "blockquote", "/blockquote", "hr", "br", "a", "/a", "table", "/table", "thead",
        "/thead", "tbody", "/tbody", "tr", "/tr", "th", "/th", "td", "/td", "s", "/s", "span", "/span",
    }  # fmt: skip
    for part in html.split("<")[1:]:
        name = part.split(">", 1)[0].split(" ", 1)[0].rstrip("/")
        assert name in allowed, (name, html)
    for scheme in ("javascript:", "vbscript:", "data:", "file:"):
        assert f'href="{scheme}' not in html.lower()
