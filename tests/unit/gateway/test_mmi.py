from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.ussd.mmi import (
    MAX_USSD_LEN,
    PREFIXES,
    PROCEDURES,
    SUPPLEMENTARY_SERVICES,
    Malformed,
    SupplementaryService,
    Ussd,
    format_ussd,
    parse,
)


@pytest.mark.parametrize(
    ("text", "prefix", "service_code", "fields", "route_key"),
    [
        ("*100#", "*", "100", (), "*100#"),
        ("*111#", "*", "111", (), "*111#"),
        ("*111*25#", "*", "111", ("25",), "*111#"),
        ("*111*828*1#", "*", "111", ("828", "1"), "*111#"),
        ("#123#", "#", "123", (), "#123#"),
        ("*#100#", "*#", "100", (), "*#100#"),
        ("**100#", "**", "100", (), "**100#"),
        ("##100#", "##", "100", (), "##100#"),
        ("*99#", "*", "99", (), "*99#"),
        ("*06#", "*", "06", (), "*06#"),
        ("*111*1*2*3*4#", "*", "111", ("1", "2", "3", "4"), "*111#"),
        ("*111**1#", "*", "111", ("", "1"), "*111#"),
        ("*111*#", "*", "111", ("",), "*111#"),
        ("*145*+79161234567*100#", "*", "145", ("+79161234567", "100"), "*145#"),
        ("  *111*828*1#\n", "*", "111", ("828", "1"), "*111#"),
        # §6.5.3: not the structured form, still USSD, cut on `*` for routing
        ("111#", "", "111", (), "111#"),
        ("+111#", "", "+111", (), "+111#"),
        ("*1#", "*", "1", (), "*1#"),
        ("*1234#", "*", "1234", (), "*1234#"),
        ("*1111#", "*", "1111", (), "*1111#"),
        ("*111*1*2*3*4*5#", "*", "111", ("1", "2", "3", "4", "5"), "*111#"),
        ("*111*abc#", "*", "111", ("abc",), "*111#"),
        ("*111*1+2#", "*", "111", ("1+2",), "*111#"),
        ("*111#1#", "*", "111#1", (), "*111#1#"),
        ("*1 1#", "*", "1 1", (), "*1 1#"),
        ("*+111#", "*", "+111", (), "*+111#"),
        ("#*111#", "", "#", ("111",), "##"),
        # five fields are not the SS shape (four at most), so a phone sends this as USSD
        ("*21*1*2*3*4*5#", "*", "21", ("1", "2", "3", "4", "5"), "*21#"),
    ],
)
def test_ussd_strings(
    text: str, prefix: str, service_code: str, fields: tuple[str, ...], route_key: str
) -> None:
    parsed = parse(text)
    assert parsed == Ussd(text.strip(), prefix, service_code, fields)
    assert isinstance(parsed, Ussd)
    assert parsed.route_key == route_key
    assert format_ussd(parsed) == text.strip()


@pytest.mark.parametrize("service_code", sorted(SUPPLEMENTARY_SERVICES))
@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_supplementary_service_code_with_every_prefix(prefix: str, service_code: str) -> None:
    text = f"{prefix}{service_code}*9161234567#"
    assert parse(text) == SupplementaryService(
        text, PROCEDURES[prefix], service_code, SUPPLEMENTARY_SERVICES[service_code]
    )


@pytest.mark.parametrize(
    ("text", "procedure", "service_code", "name"),
    [
        ("**21*9161234567#", "register", "21", "call_forwarding_unconditional"),
        ("*21#", "activate", "21", "call_forwarding_unconditional"),
        ("#21#", "deactivate", "21", "call_forwarding_unconditional"),
        ("*#21#", "interrogate", "21", "call_forwarding_unconditional"),
        ("##21#", "erase", "21", "call_forwarding_unconditional"),
        ("##002#", "erase", "002", "call_forwarding_all"),
        ("*#43#", "interrogate", "43", "call_waiting"),
        ("*#30#", "interrogate", "30", "clip"),
        ("**04*1234*4321*4321#", "register", "04", "change_pin"),
        ("**05*12345678*1111*1111#", "register", "05", "unblock_pin"),
        ("**03*330*1111*2222*2222#", "register", "03", "change_barring_password"),
        ("*33*0000#", "activate", "33", "barring_all_outgoing"),
        ("*#06#", "interrogate", "06", "imei"),
    ],
)
def test_supplementary_service_examples(
    text: str, procedure: str, service_code: str, name: str
) -> None:
    assert parse(text) == SupplementaryService(text, procedure, service_code, name)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \t\n", "empty"),
        ("hello", "no_terminating_hash"),
        ("*111#abc", "no_terminating_hash"),
        ("*111", "no_terminating_hash"),
        ("*111*1", "no_terminating_hash"),
        ("#", "nothing_before_hash"),
        ("*١١١#", "bad_characters"),  # Arabic-Indic digits are not in the GSM default alphabet
        ("*111*привет#", "bad_characters"),  # Cyrillic needs UCS-2: not a USSD string a phone sends
        ("*111*€#", "bad_characters"),  # the extension table is not the default alphabet
        ("*111*1\n2#", "bad_characters"),
        ("*111*" + "1" * (MAX_USSD_LEN - 5) + "#", "too_long"),
    ],
)
def test_malformed(text: str, reason: str) -> None:
    assert parse(text) == Malformed(text.strip(), reason)


def test_longest_allowed_string_is_accepted() -> None:
    text = "*111*" + "1" * (MAX_USSD_LEN - 6) + "#"
    assert len(text) == MAX_USSD_LEN
    assert isinstance(parse(text), Ussd)


_service_codes = st.text(alphabet="0123456789", min_size=2, max_size=3).filter(
    lambda sc: sc not in SUPPLEMENTARY_SERVICES and sc != "06"
)
_fields = st.builds(
    lambda plus, digits: ("+" if plus else "") + digits,
    st.booleans(),
    st.text(alphabet="0123456789", max_size=15),
)


@st.composite
def ussd_values(draw: st.DrawFn) -> Ussd:
    prefix = draw(st.sampled_from(PREFIXES))
    service_code = draw(_service_codes)
    fields = tuple(draw(st.lists(_fields, max_size=4)))
    text = format_ussd(Ussd("", prefix, service_code, fields))
    return Ussd(text, prefix, service_code, fields)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_never_raises_on_any_text(text: str) -> None:
    assert isinstance(parse(text), Ussd | SupplementaryService | Malformed)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789*#+ ", max_size=40))
def test_parse_never_raises_on_keypad_text(text: str) -> None:
    parsed = parse(text)
    assert parsed.text == text.strip()


@settings(max_examples=200, deadline=None)
@given(ussd_values())
def test_round_trip(u: Ussd) -> None:
    assert parse(format_ussd(u)) == u


_whitespace = st.text(alphabet=" \t\r\n\u00a0", max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(ussd_values().map(format_ussd), st.text(alphabet="0123456789*#+x", max_size=20)),
    _whitespace,
    _whitespace,
)
def test_classification_is_stable_under_surrounding_whitespace(
    text: str, before: str, after: str
) -> None:
    assert parse(before + text + after) == parse(text)


_gsm_default = st.sampled_from(sorted("0123456789*#+ abcXYZ@£$èΔ_!?.,-"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_gsm_default, min_size=1, max_size=40))
def test_anything_in_the_default_alphabet_ending_in_hash_goes_to_the_network(body: str) -> None:
    """TS 22.030 §6.5.3: a string ending in `#` that is not an MMI procedure is USSD."""
    text = body.strip() + "#"
    assume(text != "#")
    parsed = parse(text)
    assert isinstance(parsed, Ussd | SupplementaryService)
    if isinstance(parsed, Ussd):
        assert format_ussd(parsed) == text
        assert text.startswith(parsed.route_key[:-1])
