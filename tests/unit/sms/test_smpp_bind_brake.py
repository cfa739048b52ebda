"""The failed-bind brake without a socket: the delays it asks for, the networks it allows, and
the reserved sources an account may not submit from."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sms.config import SmppConfig
from sms.smpp.accounts import Account
from sms.smpp.bind_brake import ADDRESS_SHARE, BindBrake, address_allowed, networks
from sms.smpp.smsc import account_from_config

BRAKE = BindBrake(first_delay_s=0.5, max_delay_s=4.0)


def test_delays_double_per_failure_up_to_the_cap() -> None:
    assert [BRAKE.delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_an_address_spraying_system_ids_is_slowed_at_a_quarter_of_the_pace() -> None:
    assert BRAKE.delay(0, ADDRESS_SHARE - 1) == 0.0
    assert BRAKE.delay(0, ADDRESS_SHARE) == 0.5
    assert BRAKE.delay(0, 3 * ADDRESS_SHARE) == 2.0
    assert BRAKE.delay(3, ADDRESS_SHARE) == 2.0, "the larger of the two counts"


def test_a_zero_first_delay_turns_the_brake_off() -> None:
    assert BindBrake(0.0, 4.0).delay(100, 100) == 0.0


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_the_delay_is_bounded_and_never_shrinks_with_more_failures(pair: int, address: int) -> None:
    delay = BRAKE.delay(pair, address)
    assert 0.0 <= delay <= BRAKE.max_delay_s
    assert BRAKE.delay(pair + 1, address) >= delay
    assert (delay == 0.0) == (pair == 0 and address < ADDRESS_SHARE)


def test_allowed_addresses() -> None:
    fence = networks(["10.0.0.0/8", "127.0.0.2", "2001:db8::/32"])
    assert address_allowed("10.1.2.3", fence)
    assert address_allowed("127.0.0.2", fence)
    assert address_allowed("::ffff:10.9.9.9", fence), "an IPv4 peer on a dual-stack socket"
    assert address_allowed("2001:db8::1", fence)
    assert not address_allowed("127.0.0.1", fence)
    assert not address_allowed("/run/smpp.sock", fence)
    assert address_allowed("127.0.0.1", ()), "no list: any address"


def test_allowed_addresses_are_validated_at_start() -> None:
    account = {"system_id": "a", "password": "p", "allowed_addresses": ["10.0.0.0/33"]}
    with pytest.raises(ValidationError, match="not an address or a CIDR network"):
        SmppConfig.model_validate({"accounts": [account]})


def test_the_old_lockout_keys_are_refused_with_what_replaced_them() -> None:
    with pytest.raises(ValidationError, match="replaced by bind_fail_delay_s"):
        SmppConfig.model_validate({"bind_fail_system_id_limit": 20})


def test_reserved_sources_unless_the_account_lists_them() -> None:
    config = SmppConfig.model_validate(
        {
            "accounts": [
                {"system_id": "shop", "password": "p"},
                {"system_id": "op", "password": "p", "allowed_sources": ["+3339", "INFO"]},
            ]
        }
    )
    shop, op = (account_from_config(a, {"3339", "0890"}) for a in config.accounts)
    assert not shop.source_allowed("3339")
    assert not shop.source_allowed("+3339")
    assert not shop.source_allowed(" 0890")
    assert shop.source_allowed("33390") and shop.source_allowed("ALFA")
    assert op.source_allowed("+3339") and op.source_allowed("INFO")
    assert not op.source_allowed("0890"), "listed sources only"
    assert Account("x", "p").source_allowed("3339"), "nothing reserved unless handed in"
