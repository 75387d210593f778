"""The sandbox: templates render variables, and hostile ones neither escape nor hang."""

from __future__ import annotations

import pytest

from cockpit.notifications.rendering import (
    MAX_BODY,
    MAX_SUBJECT,
    TemplateProblem,
    check,
    render_body,
    render_subject,
)


def test_variables_render_and_undefined_ones_are_empty() -> None:
    body = render_body(
        "Hi {{ name|upper }}{% if n > 1 %}, {{ n }} times{% endif %}.{{ missing.attr }}",
        {"name": "ada", "n": 2},
    )
    assert body == "Hi ADA, 2 times."


def test_a_subject_is_one_line_and_capped() -> None:
    assert render_subject("a\n  b\tc", {}) == "a b c"
    long = render_subject("{% for i in range(500) %}word {% endfor %}", {})
    assert len(long) == MAX_SUBJECT
    assert long.endswith("…")


def test_a_body_is_capped() -> None:
    body = render_body("{% for i in range(9000) %}xy{% endfor %}", {})
    assert len(body) == MAX_BODY


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'a'.upper() }}",
        "{{ lipsum() }}",
        "{% for x in range(10**9) %}x{% endfor %}",
        "{% for a in range(9999) %}{% for b in range(9999) %}{% endfor %}{% endfor %}",
        "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}",
        "{{ 'x' * 10**9 }}",
        "{{ 10**10**10 }}",
        "{{ 'x'|center(999999999) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ [1, 2]|map('center', 10**8)|list }}",
        "{{ s|replace('a', 'aa')|replace('a', 'aa') }}",
    ],
)
def test_hostile_templates_neither_escape_nor_hang(source: str) -> None:
    with pytest.raises(TemplateProblem):
        render_body(source, {"s": "a" * 10_000})


@pytest.mark.parametrize(
    "source",
    [
        "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% set ns = namespace(s='a') %}",
        "{% include 'layout/app.html' %}",
        "{% import 'macros/ui.html' as ui %}",
        "{% extends 'layout/app.html' %}",
        "{% for x in [1] recursive %}{{ loop(x) }}{% endfor %}",
        "{{ x|attr('__class__') }}",
    ],
)
def test_what_a_message_does_not_need_is_refused_when_checked(source: str) -> None:
    with pytest.raises(TemplateProblem):
        check(source, [])


def test_syntax_errors_name_their_line() -> None:
    with pytest.raises(TemplateProblem) as caught:
        check("line one\n{% if %}", [])
    assert caught.value.line == 2


def test_unknown_variables_are_warnings() -> None:
    assert check("{{ name }} {{ nope }} {% for i in items %}{{ i }}{% endfor %}", ["name"]).unknown == [
        "items",
        "nope",
    ]
