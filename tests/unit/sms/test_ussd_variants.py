"""Every USSD-over-SMPP variant, sans-IO: its submit_sm fixtures (what the vendor's client sends,
as vumi writes it through python-smpp) read through the real codec, the deliver_sm TLVs it
writes for each step, and the account options that pick it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, load_config
from sms.smpp.codec import decode, encode
from sms.smpp.constants import Status
from sms.smpp.pdu import INT_SIZES, TLV_BY_NAME, TLV_BY_TAG, Pdu, Tlv, make_pdu
from sms.smpp.ussd_bridge import hop_pdu
from sms.smpp.ussd_relay import Hop
from sms.smpp.ussd_variants import DEFAULT, VARIANTS
from sms.smpp.ussd_variants.base import Reading, Refused, Step

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ussd_variants"


def fixture(variant: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / variant / name).read_text(encoding="utf-8"))
    return loaded


def submit_cases() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (variant, name, outcome)
        for variant in sorted(VARIANTS)
        for name, outcome in sorted(fixture(variant, "expected.json").items())
    ]


def over_the_wire(pdu: Pdu) -> Pdu:
    """The PDU as the SMSC reads it off the socket."""
    return decode(encode(pdu))


def submit_sm(tlvs: list[list[str]], text: str = "Menu") -> Pdu:
    raw = [Tlv(TLV_BY_NAME[name].tag, bytes.fromhex(octets)) for name, octets in tlvs]
    pdu = make_pdu("submit_sm", 7, service_type="USSD", destination_addr="79161234567", tlvs=raw)
    pdu.fields["short_message"] = text.encode()
    return over_the_wire(pdu)


def wire_tlvs(pdu: Pdu) -> dict[str, str]:
    """Each TLV's octets in hex, the way python-smpp hands a 'hex' TLV to vumi."""
    seen = {}
    for tlv in pdu.tlvs:
        spec = TLV_BY_TAG[tlv.tag]
        value = tlv.value
        octets = value.to_bytes(INT_SIZES[spec.kind], "big") if isinstance(value, int) else value
        assert isinstance(octets, bytes)
        seen[spec.name] = octets.hex()
    return seen


@pytest.mark.parametrize(
    ("variant", "name", "outcome"), submit_cases(), ids=[f"{v}/{n}" for v, n, _ in submit_cases()]
)
def test_each_submit_fixture_reads_as_its_source_says(
    variant: str, name: str, outcome: dict[str, Any]
) -> None:
    case = fixture(variant, name)
    ussd_end = case.get("account", {}).get("ussd_end", "op")
    seen = VARIANTS[variant].read_submit(submit_sm(case["tlvs"], case["short_message"]), ussd_end)
    if name.startswith("valid_"):
        assert seen == Reading(outcome["end"], outcome["reference"])
    else:
        assert isinstance(seen, Refused), seen
        assert seen.status == Status[outcome["status"]]
        assert seen.detail


def test_every_variant_has_fixtures_and_every_fixture_an_expectation() -> None:
    assert {p.name for p in FIXTURES.iterdir()} == set(VARIANTS)
    for folder in FIXTURES.iterdir():
        files = {p.name for p in folder.iterdir() if p.name.startswith(("valid_", "invalid_"))}
        assert files == set(fixture(folder.name, "expected.json")), folder.name
        assert {f.split("_")[0] for f in files} == {"valid", "invalid"}, folder.name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("step", list(Step))
def test_each_deliver_carries_the_tlvs_its_client_reads(variant: str, step: Step) -> None:
    case = fixture(variant, "deliver.json")
    wire = VARIANTS[variant].deliver(step, case["number"], case["reference"], case["sequence"])
    text = {Step.BEGIN: "*500#", Step.CONTINUE: "1", Step.RELEASE: ""}[step]
    hop = Hop("shop", "79161234567", wire.op, text, wire.info, "500", wire.reference)
    pdu = over_the_wire(hop_pdu(hop))
    assert wire_tlvs(pdu) == case[step.value]
    assert (pdu["service_type"], pdu["short_message"]) == ("USSD", text.encode())


def test_the_refusal_names_the_ops_the_variant_reads() -> None:
    seen = VARIANTS["mica"].read_submit(submit_sm([["ussd_service_op", "11"]]), "op")
    assert isinstance(seen, Refused)
    assert seen.detail == (
        "ussd_service_op 0x11 is not 0x02 (a screen that waits), 0x17 (the last screen)"
    )


@given(st.sampled_from(sorted(VARIANTS)), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_any_op_octet_is_read_or_refused_with_the_spec_status(
    variant: str, op: int, dialogue_id: int
) -> None:
    tlvs = [
        ["ussd_service_op", f"{op:02x}"],
        ["its_session_info", f"{dialogue_id:04x}"],
        ["user_message_reference", f"{dialogue_id:04x}"],
    ]
    seen = VARIANTS[variant].read_submit(submit_sm(tlvs), "op")
    accepted = {"smpp34": {2, 3, 17}, "mica": {0x02, 0x17}, "sixdee": {0x02, 0x17}}[variant]
    if op in accepted:
        assert isinstance(seen, Reading)
    else:
        assert isinstance(seen, Refused) and seen.status == Status.RINVOPTPARAMVAL


@given(st.sampled_from(sorted(VARIANTS)), st.integers(0, 10**9), st.integers(0, 200))
def test_a_dialogue_keeps_the_id_its_client_keys_on(
    variant: str, counter: int, sequence: int
) -> None:
    """What vumi's processor for the variant takes as the session id is the same on every hop,
    and only the release says the dialogue ended."""
    v = VARIANTS[variant]
    number = v.dialogue_number(counter)
    seen = []
    for step in Step:
        wire = v.deliver(step, number, number, sequence)
        hop = Hop("shop", "79161234567", wire.op, "", wire.info, "500", wire.reference)
        tlvs = over_the_wire(hop_pdu(hop))
        info, umr = tlvs.tlv("its_session_info"), tlvs.tlv("user_message_reference")
        if variant == "mica":
            assert isinstance(umr, int) and 0x1000 <= umr <= 0xFFFF  # four hex digits
            seen.append((umr, wire.op == 0x81))
        else:
            assert isinstance(info, int)
            dialogue = info >> 8 if variant == "smpp34" else info & 0xFFFE
            seen.append((dialogue, bool(info & 1)))
    assert len({dialogue for dialogue, _ in seen}) == 1
    assert [ended for _, ended in seen] == [False, False, True]


def account_config(**extra: Any) -> dict[tuple[str, ...], Any]:
    return {("smpp", "accounts"): [{"system_id": "app", "password": "pw", **extra}]}


def test_the_default_variant_is_smpp34() -> None:
    config = load_config(None, env={}, overrides=account_config())
    assert config.smpp.accounts[0].ussd_variant == DEFAULT == "smpp34"
    chosen = load_config(None, env={}, overrides=account_config(ussd_variant="sixdee"))
    assert chosen.smpp.accounts[0].ussd_variant == "sixdee"


def test_an_unknown_variant_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={}, overrides=account_config(ussd_variant="huawei"))
    message = str(caught.value)
    assert "smpp.accounts.0.ussd_variant" in message
    assert "unknown USSD variant 'huawei'; known: mica, sixdee, smpp34" in message


def test_the_end_bit_option_belongs_to_smpp34() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None, env={}, overrides=account_config(ussd_variant="mica", ussd_end="session_info")
        )
    assert "ussd_end: session_info is a choice of ussd_variant smpp34, not mica" in str(
        caught.value
    )


def test_the_commented_account_examples_in_config_yaml_load() -> None:
    lines = (FIXTURES.parents[2] / "config.yaml").read_text(encoding="utf-8").splitlines()
    examples = [line.replace("# - ", "- ", 1) for line in lines if line.startswith("    # - ")]
    accounts = yaml.safe_load("\n".join(line.strip() for line in examples))
    config = load_config(None, env={}, overrides={("smpp", "accounts"): accounts})
    assert [a.ussd_variant for a in config.smpp.accounts] == ["mica", "sixdee"]
