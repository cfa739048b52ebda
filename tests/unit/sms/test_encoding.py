from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sms.encoding import (
    SMS_MAX_PARTS,
    SMS_PART,
    SMS_SINGLE,
    USSD_MAX_SEPTETS,
    USSD_MAX_UCS2,
    Encoding,
    TextTooLong,
    char_cost,
    choose_encoding,
    gsm7_septets,
    plan_sms,
    ussd_fits,
    ussd_measure,
)

EXTENSION_CHARS = "^{}\\[~]|€\f"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (153 * 255, 255)],
)
def test_ascii_segment_counts(length: int, segments: int) -> None:
    plan = plan_sms("a" * length)
    assert plan.encoding is Encoding.GSM7
    assert plan.units == length
    assert plan.segments == segments


@pytest.mark.parametrize("ch", list(EXTENSION_CHARS))
def test_extension_characters_cost_two_septets(ch: str) -> None:
    assert gsm7_septets(ch) == 2
    assert char_cost(ch, Encoding.GSM7) == 2
    assert choose_encoding(ch) is Encoding.GSM7


def test_extension_characters_count_twice_against_the_single_limit() -> None:
    assert plan_sms("a" * 158 + "€").segments == 1
    assert plan_sms("a" * 159 + "€").segments == 2
    assert plan_sms("{" * 80).segments == 1
    assert plan_sms("{" * 81).segments == 2


def test_extension_pair_is_never_split_across_parts() -> None:
    # 152 septets then a two-septet "€": it would straddle the 153-septet boundary.
    text = "a" * 152 + "€" + "b" * 10
    plan = plan_sms(text)
    assert plan.parts == ["a" * 152, "€" + "b" * 10]
    assert plan.units == 164


def test_gsm7_basic_table_accents_and_greek_stay_gsm7() -> None:
    assert choose_encoding("Ça coûte 5€? é è ñ Ü Δ Ω @ £") is Encoding.UCS2  # 'û' is not in GSM-7
    assert choose_encoding("Ça va? é è ñ Ü Δ Ω @ £ ¥") is Encoding.GSM7


def test_backtick_is_not_gsm7() -> None:
    assert gsm7_septets("`") is None
    assert choose_encoding("a`b") is Encoding.UCS2


@pytest.mark.parametrize(
    ("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3), (67 * 255, 255)]
)
def test_cyrillic_uses_ucs2(length: int, segments: int) -> None:
    plan = plan_sms("я" * length)
    assert plan.encoding is Encoding.UCS2
    assert plan.segments == segments
    assert all(len(part) <= 67 for part in plan.parts) or segments == 1


def test_one_cyrillic_letter_turns_the_whole_text_ucs2() -> None:
    plan = plan_sms("a" * 100 + "Ж")
    assert plan.encoding is Encoding.UCS2
    assert plan.segments == 2


def test_ucs2_parts_hold_67_characters() -> None:
    plan = plan_sms("ш" * 200)
    assert [len(p) for p in plan.parts] == [67, 67, 66]


def test_emoji_surrogate_pair_is_never_split() -> None:
    # 66 units then an emoji of two units: it would straddle the 67-unit boundary.
    text = "ж" * 66 + "😀" + "ж" * 10
    plan = plan_sms(text)
    assert plan.encoding is Encoding.UCS2
    assert plan.units == 78
    assert plan.parts == ["ж" * 66, "😀" + "ж" * 10]


def test_emoji_counts_two_units_against_the_single_limit() -> None:
    assert plan_sms("😀" * 35).segments == 1
    assert plan_sms("😀" * 35 + "a").segments == 2


def test_too_many_segments_is_refused() -> None:
    with pytest.raises(TextTooLong):
        plan_sms("a" * (153 * SMS_MAX_PARTS + 1))


@pytest.mark.parametrize(
    ("text", "encoding", "used", "fits"),
    [
        ("a" * 182, Encoding.GSM7, 182, True),
        ("a" * 183, Encoding.GSM7, 183, False),
        ("a" * 180 + "€", Encoding.GSM7, 182, True),
        ("a" * 181 + "€", Encoding.GSM7, 183, False),
        ("я" * 80, Encoding.UCS2, 80, True),
        ("я" * 81, Encoding.UCS2, 81, False),
        ("Баланс: 100 руб." + "." * 64, Encoding.UCS2, 80, True),
        ("", Encoding.GSM7, 0, True),
    ],
)
def test_ussd_limits(text: str, encoding: Encoding, used: int, fits: bool) -> None:
    measure = ussd_measure(text)
    assert (measure.encoding, measure.used, measure.fits) == (encoding, used, fits)
    assert measure.limit == (USSD_MAX_SEPTETS if encoding is Encoding.GSM7 else USSD_MAX_UCS2)
    assert ussd_fits(text) is fits


def test_russian_screen_of_81_characters_does_not_fit() -> None:
    screen = "1. Баланс\n2. Пароль\n3. Тарифы\n4. Услуги\n5. Бонусы\n6. Перевод\n0. Назад"
    screen = screen + "." * (81 - len(screen))
    assert len(screen) == 81
    assert not ussd_fits(screen)
    assert ussd_fits(screen[:80])


def test_raw_escape_character_forces_ucs2() -> None:
    # A bare ESC followed by "e" would be read back as "€" if it travelled as GSM-7.
    text = "\x1be"
    assert choose_encoding(text) is Encoding.UCS2
    assert ussd_measure(text).encoding is Encoding.UCS2


# Mostly GSM-7 text with extension characters, sprinkled with Cyrillic and astral characters
# so that both alphabets and both kinds of double-cost character reach the part boundaries.
_sms_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("abc xyz 0123456789.,!?@£$¥èéùìòÇØøÅåΔΦΓΛΩΠΨΣΘΞÆæßÉ\n\r"),
        st.sampled_from(EXTENSION_CHARS),
        st.sampled_from("жшяЁё"),
        st.sampled_from("😀🎉𝄞"),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=700,
)


def _cost(text: str, encoding: Encoding) -> int:
    return sum(char_cost(ch, encoding) for ch in text)


@settings(max_examples=200, deadline=None)
@given(_sms_text)
def test_parts_join_back_to_the_text(text: str) -> None:
    assert "".join(plan_sms(text).parts) == text


@settings(max_examples=200, deadline=None)
@given(_sms_text)
def test_each_part_fits_the_per_part_limit(text: str) -> None:
    plan = plan_sms(text)
    assert plan.units == _cost(text, plan.encoding)
    limit = SMS_SINGLE[plan.encoding] if plan.segments == 1 else SMS_PART[plan.encoding]
    assert all(_cost(part, plan.encoding) <= limit for part in plan.parts)
    assert all(part for part in plan.parts) or text == ""


@settings(max_examples=200, deadline=None)
@given(_sms_text)
def test_one_segment_iff_within_the_single_limit(text: str) -> None:
    plan = plan_sms(text)
    assert (plan.segments == 1) == (plan.units <= SMS_SINGLE[plan.encoding])


@settings(max_examples=200, deadline=None)
@given(_sms_text)
def test_gsm7_is_chosen_exactly_when_every_character_encodes(text: str) -> None:
    encodable = all(gsm7_septets(ch) is not None for ch in text)
    assert (choose_encoding(text) is Encoding.GSM7) == encodable
