"""Templates, money, phones and pagination as the subscriber reads them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from menus.inputs import parse_amount, parse_phone
from menus.render import (
    TemplateError,
    fit,
    format_money,
    paginate,
    parse_template,
    render,
    template_fields,
)
from sms.encoding import ussd_fits


@pytest.mark.parametrize(
    ("kopecks", "ru", "en"),
    [
        (12345, "123,45 руб.", "123.45 RUB"),
        (5, "0,05 руб.", "0.05 RUB"),
        (-9_999_999_999, "-99 999 999,99 руб.", "-99999999.99 RUB"),
        (100_000_00, "100 000,00 руб.", "100000.00 RUB"),
    ],
)
def test_money(kopecks: int, ru: str, en: str) -> None:
    assert format_money(kopecks, "ru") == ru
    assert format_money(kopecks, "en") == en


def test_render_filters_and_literal_braces() -> None:
    values = {"b": 15050, "to": "+79161234567", "name": "ivan"}
    assert render("{b|money} {to|phone} {name|upper} {{x}}", values, "ru") == (
        "150,50 руб. 9161234567 IVAN {x}"
    )
    assert render("Hi {missing}!", {}, "en") == "Hi !"


@pytest.mark.parametrize(
    "template", ["{a.b}", "{a[0]}", "{__class__|x}", "{a|lower}", "{", "}", "{a|}", "{1a}"]
)
def test_template_grammar_refuses_anything_else(template: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(template)
    assert render(template, {"a": "v"}, "ru") == template  # a live session never crashes


def test_template_fields() -> None:
    assert [(f.name, f.filter) for f in template_fields("{a} {b|money}")] == [
        ("a", None),
        ("b", "money"),
    ]


@pytest.mark.parametrize(
    ("typed", "kopecks"), [("1", 100), ("1,5", 150), ("1.05", 105), ("99999999,99", 9_999_999_999)]
)
def test_parse_amount(typed: str, kopecks: int) -> None:
    assert parse_amount(typed) == kopecks


@pytest.mark.parametrize("typed", ["", ",5", "1,", "1,234", "1e3", "123456789", "1 000"])
def test_parse_amount_refuses(typed: str) -> None:
    assert parse_amount(typed) is None


def test_parse_phone() -> None:
    assert parse_phone("8 916 123-45-67") == "+79161234567"
    assert parse_phone("4951234567") is None


def test_pagination_keeps_every_page_within_the_limit() -> None:
    lines = [f"{i} Пункт меню номер {i}" for i in range(1, 15)]
    pages = paginate(lines, "99 Далее").pages
    assert len(pages) > 1
    assert all(ussd_fits(page) for page in pages)
    assert all(page.endswith("\n99 Далее") for page in pages[:-1])
    assert not pages[-1].endswith("99 Далее")
    shown = [line for page in pages for line in page.split("\n") if line != "99 Далее"]
    assert shown == lines


def test_short_text_is_one_page() -> None:
    assert paginate(["Меню", "1 Да"], "99 Далее").pages == ["Меню\n1 Да"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(min_size=0, max_size=120).filter(lambda s: "\n" not in s), min_size=1, max_size=12
    )
)
def test_pagination_property(lines: list[str]) -> None:
    result = paginate(lines, "99 More")
    assert all(ussd_fits(page) for page in result.pages)
    if not result.cut:
        shown = [line for page in result.pages for line in page.split("\n")]
        assert [line for line in shown if line != "99 More"] == [
            line for line in lines if line != "99 More"
        ]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_fit_is_a_prefix_within_the_limit(text: str) -> None:
    cut = fit(text)
    assert text.startswith(cut) and ussd_fits(cut)
