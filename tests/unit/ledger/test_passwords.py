"""Password policy, hashing, one-time codes, and that no clear text ever reaches Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis.asyncio as aioredis

from ledger.passwords import (
    PasswordHash,
    hash_password,
    new_otp,
    policy_violation,
    verify_password,
)
from ledger.service import Ledger, LedgerSettings

pytestmark = pytest.mark.both_backends

FAST_N = 2**10
MSISDN = "+79161234567"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "too_short"),
        ("Ab1!x", "too_short"),
        ("ABCDEF1!", "no_lower"),
        ("abcdef1!", "no_upper"),
        ("Abcdefg!", "no_digit"),
        ("Abcdef12", "no_symbol"),
        ("Abcde1!", None),
        ("Пароль1!", None),
        ("Aa1 aaaa", None),
    ],
)
def test_permanent_password_policy(password: str, reason: str | None) -> None:
    assert policy_violation(password) == reason


def test_hash_verify_round_trip() -> None:
    stored = hash_password("Secret1!", FAST_N)
    assert verify_password("Secret1!", stored)
    assert not verify_password("secret1!", stored)
    assert not verify_password("", stored)


def test_salts_differ_for_the_same_secret() -> None:
    first, second = hash_password("123456", FAST_N), hash_password("123456", FAST_N)
    assert first.salt_hex != second.salt_hex
    assert first.hash_hex != second.hash_hex
    assert len(bytes.fromhex(first.salt_hex)) == 16


def test_stored_fields_round_trip_and_damaged_records_never_match() -> None:
    stored = hash_password("654321", FAST_N)
    again = PasswordHash.from_fields(stored.to_fields("otp"), "otp")
    assert again == stored
    assert again is not None and verify_password("654321", again)
    assert PasswordHash.from_fields({"otp_salt": "00"}, "otp") is None
    damaged = PasswordHash(salt_hex="zz", hash_hex=stored.hash_hex, n=FAST_N)
    assert not verify_password("654321", damaged)
    absurd = PasswordHash(salt_hex=stored.salt_hex, hash_hex=stored.hash_hex, n=3)
    assert not verify_password("654321", absurd)


def test_otp_is_six_digits_and_varies() -> None:
    codes = {new_otp() for _ in range(50)}
    assert all(re.fullmatch(r"[0-9]{6}", code) for code in codes)
    assert len(codes) > 1


async def _all_redis_text(client: aioredis.Redis) -> list[str]:
    found: list[Any] = []
    async for key in client.scan_iter():
        found.append(key)
        kind = await client.type(key)
        if kind == "hash":
            for field, value in (await client.hgetall(key)).items():
                found += [field, value]
        elif kind == "list":
            found += await client.lrange(key, 0, -1)
        elif kind == "zset":
            found += await client.zrange(key, 0, -1)
        elif kind == "string":
            found.append(await client.get(key))
        else:
            pytest.fail(f"unexpected key type {kind!r} for {key!r}")
    return [str(item) for item in found]


async def test_no_clear_text_password_is_stored(redis_client: aioredis.Redis) -> None:
    ledger = Ledger(redis_client, LedgerSettings(scrypt_n=FAST_N))
    await ledger.provision(MSISDN, 1000.0, "test")
    issued = await ledger.issue_password(MSISDN, 1000.0, "test")
    assert issued.ok
    code = issued.values["code"]
    permanent = "Zq9!xw"
    assert (await ledger.set_permanent_password(MSISDN, permanent, 1001.0, "test")).ok
    assert (
        await ledger.login(MSISDN, "000000" if code != "000000" else "111111", 1002.0, "test")
    ).outcome == "bad_password"
    texts = await _all_redis_text(redis_client)
    assert texts, "the scan saw nothing"
    # Whole tokens, so a clear text inside a JSON document is found too, while a digit run that
    # happens to occur inside a hex digest or a timestamp is not mistaken for it.
    tokens = {token for text in texts for token in re.split(r"[^0-9A-Za-z!]+", text)}
    assert code not in tokens
    assert permanent not in tokens
