"""The ledger: subscribers, money, passwords and the journal, kept in Redis.

Every mutation is one Lua script that validates, applies and journals atomically. Python only
validates arguments (before any write), hashes passwords (Lua cannot) and shapes the answers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from ledger import keys
from ledger.catalogue import Catalogue, default_catalogue
from ledger.common import (
    OOM_PROBE_LUA,
    Answer,
    LedgerValueError,
    check_amount,
    check_msisdn,
    check_text,
    compact_json,
)
from ledger.documents import DetailOps
from ledger.limits import Limit, RateLimiter, login_attempts_key
from ledger.models import LANGS, SERVICES, STATUSES, Subscriber, iso_utc
from ledger.money import DEFAULT_MONEY_SETTINGS, MoneyOps, MoneySettings
from ledger.offers import OfferOps
from ledger.outcomes import Outcome, Result
from ledger.passwords import (
    DEFAULT_N,
    PasswordHash,
    hash_password,
    new_otp,
    policy_violation,
    verify_password,
)
from ledger.store_client import queue_script, script_reply

_TARIFF = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_LOGIN_ATTEMPTS = 3
_MAX_PASSWORD_LENGTH = 256


@dataclass(frozen=True)
class LedgerSettings:
    otp_ttl_s: int = 172800
    max_failures: int = 3
    issue_limit_count: int = 5
    issue_limit_window_s: int = 3600
    # Login attempts per number, right and wrong alike: caps guessing below the lockout too.
    login_limit_count: int = 10
    login_limit_window_s: int = 600
    initial_balance_kop: int = 10000
    default_tariff: str = "basic"
    default_lang: str = "ru"
    scrypt_n: int = DEFAULT_N


DEFAULT_SETTINGS: Final = LedgerSettings()


def new_subscriber_fields(msisdn: str, settings: LedgerSettings, now: float) -> dict[str, str]:
    """The hash fields a subscriber starts with (what `upsert.lua` writes for a new number)."""
    return {
        "msisdn": msisdn,
        "balance_kop": str(settings.initial_balance_kop),
        "bonus_points": "0",
        "status": "active",
        "tariff": settings.default_tariff,
        "lang": settings.default_lang,
        "services": "[]",
        "group": "null",
        "created_at": repr(float(now)),
    }


def _load_script(name: str) -> str:
    lua = resources.files("ledger") / "lua"
    prelude = (lua / "_prelude.lua").read_text("utf-8")
    return "\n".join((OOM_PROBE_LUA, prelude, (lua / name).read_text("utf-8")))


def _encode_change(field: str, value: object) -> str:
    """Validate one `put` field and return the string stored in the subscriber hash."""
    if field in ("balance_kop", "bonus_points"):
        return str(check_amount(field, value, 0))
    if field == "tariff":
        if not isinstance(value, str) or not _TARIFF.fullmatch(value):
            raise LedgerValueError(field, "invalid")
        return value
    if field == "lang":
        if value not in LANGS:
            raise LedgerValueError(field, "unknown_lang")
        return str(value)
    if field == "status":
        if value not in STATUSES:
            raise LedgerValueError(field, "unknown_status")
        return str(value)
    if field == "services":
        if not isinstance(value, list | tuple):
            raise LedgerValueError(field, "not_a_list")
        if not all(isinstance(s, str) and s in SERVICES for s in value):
            raise LedgerValueError(field, "unknown_service")
        return compact_json(sorted(set(value)))
    raise LedgerValueError(field, "unknown_field")


def _validate_changes(changes: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(changes, Mapping):
        raise LedgerValueError("changes", "not_a_mapping")
    encoded: dict[str, str] = {}
    for field, value in changes.items():
        if not isinstance(field, str):
            raise LedgerValueError(str(field), "unknown_field")
        encoded[field] = _encode_change(field, value)
    return encoded


def _as_dict(flat: Sequence[Any]) -> dict[str, str]:
    """A hash as a script returns it (field, value, field, value ...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _normalize_entry(entry: dict[str, Any]) -> dict[str, Any]:
    # cjson writes an empty Lua table as {}; a services value is always a list.
    for side in ("before", "after"):
        values = entry.get(side)
        if isinstance(values, dict) and values.get("services") == {}:
            values["services"] = []
    return entry


class Ledger:
    """Subscribers and passwords here; money, offers and call detail in the parts it holds."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: LedgerSettings = DEFAULT_SETTINGS,
        *,
        money: MoneySettings = DEFAULT_MONEY_SETTINGS,
        catalogue: Catalogue | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self.money = MoneyOps(redis, money)
        self.offers = OfferOps(redis, self.catalogue, moves=self.money.moves)
        self.detail = DetailOps(redis, self.catalogue)
        self._upsert = self._script("upsert.lua")
        self._set_service = self._script("set_service.lua")
        self._issue = self._script("issue_password.lua")
        self._set_permanent = self._script("set_permanent_password.lua")
        self._login_record = self._script("login_record.lua")
        self._limits = RateLimiter(redis)
        # No probe, no prelude: its first line must be the flags that let it run on a full store.
        self._read = redis.register_script(
            (resources.files("ledger") / "lua" / "read.lua").read_text("utf-8")
        )

    def _script(self, name: str) -> AsyncScript:
        return self._redis.register_script(_load_script(name))

    async def _call(self, script: AsyncScript, keys_: list[str], args: list[str]) -> Answer:
        raw = await script(keys=keys_, args=args)
        decoded = json.loads(raw)
        values = decoded.get("values")
        return Answer(str(decoded["outcome"]), values if isinstance(values, dict) else {})

    @staticmethod
    def _base_entry(msisdn: str, now: float, actor: str) -> str:
        return compact_json(
            {
                "id": uuid.uuid4().hex,
                "at": iso_utc(now),
                "ts": now,
                "actor": actor,
                "msisdn": msisdn,
            }
        )

    @staticmethod
    def _check_common(msisdn: str, now: float, actor: str) -> None:
        check_msisdn(msisdn)
        if not isinstance(now, int | float) or isinstance(now, bool) or not 0 <= now < 1e11:
            raise LedgerValueError("now", "out_of_range")
        check_text("actor", actor)

    # -- subscribers ---------------------------------------------------------------------------

    async def get(self, msisdn: str) -> Subscriber | None:
        subscriber, _ = await self.get_with(msisdn)
        return subscriber

    async def get_with(
        self, msisdn: str, also: Sequence[tuple[str, str]] = ()
    ) -> tuple[Subscriber | None, list[Any]]:
        """The subscriber, and in the same script call the hash fields `also` names: (key,
        field) pairs of keys in the subscriber's slot, field "" for the whole hash (as a dict).
        One script, so one atomic read; it writes nothing, so a full store still answers it."""
        keys_, args = self._read_call(msisdn, also)
        return self._decode_read(await self._read(keys=keys_, args=args))

    # The two halves of `get_with`, for a caller that sends the read with its own commands in
    # one round trip.
    def queue_get(self, pipe: Any, msisdn: str, also: Sequence[tuple[str, str]] = ()) -> None:
        queue_script(pipe, self._read, *self._read_call(msisdn, also))

    async def get_reply(
        self, reply: Any, msisdn: str, also: Sequence[tuple[str, str]] = ()
    ) -> tuple[Subscriber | None, list[Any]]:
        """The answer to `queue_get`, its pipeline sent with raise_on_error=False."""
        keys_, args = self._read_call(msisdn, also)
        return self._decode_read(await script_reply(reply, self._read, keys_, args))

    @staticmethod
    def _read_call(msisdn: str, also: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
        check_msisdn(msisdn)
        keys_ = [keys.subscriber(msisdn), keys.password(msisdn), *(key for key, _ in also)]
        return keys_, [field for _, field in also]

    @staticmethod
    def _decode_read(reply: Sequence[Any]) -> tuple[Subscriber | None, list[Any]]:
        fields, locked, *more = reply
        extra = [_as_dict(value) if isinstance(value, list) else value for value in more]
        if not fields:
            return None, extra
        return Subscriber.from_redis(_as_dict(fields), login_locked=locked == "1"), extra

    async def get_with_packages(self, msisdn: str) -> tuple[Subscriber | None, dict[str, int]]:
        """The subscriber and what is left of its tariff's packages, read together."""
        subscriber, (packages,) = await self.get_with(msisdn, [self.offers.packages_read(msisdn)])
        if subscriber is None:
            return None, {}
        return subscriber, self.offers.remaining(subscriber.tariff, packages)

    async def provision(self, msisdn: str, now: float, actor: str) -> Subscriber:
        subscriber, _ = await self._upsert_changes(msisdn, {}, now, actor)
        return subscriber

    async def put(
        self, msisdn: str, changes: Mapping[str, Any], now: float, actor: str
    ) -> tuple[Subscriber, bool]:
        return await self._upsert_changes(msisdn, changes, now, actor)

    async def _upsert_changes(
        self, msisdn: str, changes: Mapping[str, Any], now: float, actor: str
    ) -> tuple[Subscriber, bool]:
        self._check_common(msisdn, now, actor)
        encoded = _validate_changes(changes)
        defaults = new_subscriber_fields(msisdn, self._settings, now)
        keys_ = [keys.subscriber(msisdn), keys.journal(msisdn), keys.password(msisdn)]
        base = self._base_entry(msisdn, now, actor)
        args: list[str] = [base, compact_json(defaults), compact_json(encoded), ""]
        answer = await self._call(self._upsert, keys_, args)
        if answer.outcome == "need_account":
            # The sequence key lives outside the subscriber's slot, so it is taken first; a lost
            # race only skips one account number.
            sequence = await self._redis.incr(keys.ACCOUNT_SEQUENCE)
            args[3] = str(keys.ACCOUNT_BASE + int(sequence))
            answer = await self._call(self._upsert, keys_, args)
        if answer.outcome == "invalid":
            raise LedgerValueError(str(answer.values["field"]), str(answer.values["reason"]))
        subscriber = Subscriber.from_redis(
            answer.values["record"], login_locked=bool(answer.values["login_locked"])
        )
        return subscriber, bool(answer.values["created"])

    # -- services ------------------------------------------------------------------------------

    async def enable_service(self, msisdn: str, service: str, now: float, actor: str) -> Result:
        return await self._change_service(msisdn, service, "enable", now, actor)

    async def disable_service(self, msisdn: str, service: str, now: float, actor: str) -> Result:
        return await self._change_service(msisdn, service, "disable", now, actor)

    async def _change_service(
        self, msisdn: str, service: str, mode: str, now: float, actor: str
    ) -> Result:
        self._check_common(msisdn, now, actor)
        if service not in SERVICES:
            return Result(Outcome.INVALID, {"field": "service", "reason": "unknown_service"})
        keys_ = [keys.subscriber(msisdn), keys.journal(msisdn)]
        answer = await self._call(
            self._set_service, keys_, [self._base_entry(msisdn, now, actor), service, mode]
        )
        return answer.result()

    # -- money ---------------------------------------------------------------------------------

    async def apply_payment(
        self, msisdn: str, payment_id: str, amount_kop: int, source: str, now: float, actor: str
    ) -> Result:
        """A top-up, idempotent per payment_id; it repays an outstanding promised payment first."""
        return await self.money.apply_payment(msisdn, payment_id, amount_kop, source, now, actor)

    # -- passwords -----------------------------------------------------------------------------

    async def issue_password(self, msisdn: str, now: float, actor: str) -> Result:
        self._check_common(msisdn, now, actor)
        settings = self._settings
        code = new_otp()
        hashed = hash_password(code, settings.scrypt_n)
        expires_at = float(now) + settings.otp_ttl_s
        keys_ = [
            keys.subscriber(msisdn),
            keys.password(msisdn),
            keys.password_issues(msisdn),
            keys.journal(msisdn),
        ]
        args: list[str] = [
            self._base_entry(msisdn, now, actor),
            repr(float(now)),
            str(settings.issue_limit_window_s),
            str(settings.issue_limit_count),
            uuid.uuid4().hex,
            repr(expires_at),
            compact_json(hashed.to_fields("otp")),
        ]
        result = (await self._call(self._issue, keys_, args)).result()
        if not result.ok:
            return result
        return Result(Outcome.OK, {"code": code, "expires_at": expires_at})

    async def set_permanent_password(
        self, msisdn: str, password: str, now: float, actor: str
    ) -> Result:
        self._check_common(msisdn, now, actor)
        if not isinstance(password, str):
            raise LedgerValueError("password", "not_a_string")
        reason = policy_violation(password)
        if reason is not None:
            return Result(Outcome.WEAK_PASSWORD, {"reason": reason})
        hashed = hash_password(password, self._settings.scrypt_n)
        keys_ = [keys.subscriber(msisdn), keys.password(msisdn), keys.journal(msisdn)]
        args: list[str] = [
            self._base_entry(msisdn, now, actor),
            compact_json(hashed.to_fields("perm")),
        ]
        return (await self._call(self._set_permanent, keys_, args)).result()

    async def login(self, msisdn: str, password: str, now: float, actor: str) -> Result:
        self._check_common(msisdn, now, actor)
        if not isinstance(password, str):
            raise LedgerValueError("password", "not_a_string")
        limit = Limit(self._settings.login_limit_count, self._settings.login_limit_window_s)
        wait = await self._limits.hit(login_attempts_key(msisdn), limit, float(now))
        if wait is not None:
            # Refused before any hash is computed: a flood costs no scrypt time.
            return Result(Outcome.RATE_LIMITED, {"retry_after_s": wait})
        keys_ = [keys.subscriber(msisdn), keys.password(msisdn), keys.journal(msisdn)]
        for _ in range(_LOGIN_ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.exists(keys.subscriber(msisdn))
                pipe.hgetall(keys.password(msisdn))
                exists, pw_fields = await pipe.execute()
            if not exists:
                return Result(Outcome.UNKNOWN_SUBSCRIBER)
            if pw_fields.get("locked") == "1":
                return Result(Outcome.LOCKED)
            verdict = self._verdict(password, pw_fields, float(now))
            args: list[str] = [
                self._base_entry(msisdn, now, actor),
                pw_fields.get("version", "0"),
                verdict,
                str(self._settings.max_failures),
            ]
            answer = await self._call(self._login_record, keys_, args)
            if answer.outcome != "retry":
                return answer.result()
        # The password keeps changing under us: refuse without counting a failure.
        return Result(Outcome.BAD_PASSWORD, {"attempts_left": await self._attempts_left(msisdn)})

    @staticmethod
    def _verdict(password: str, pw_fields: dict[str, str], now: float) -> str:
        if len(password) > _MAX_PASSWORD_LENGTH:
            # Nobody types this much; do not spend scrypt time on it.
            return "bad"
        otp = PasswordHash.from_fields(pw_fields, "otp")
        fresh = now < float(pw_fields.get("otp_expires_at", "0"))
        if otp is not None and fresh and verify_password(password, otp):
            return "otp"
        permanent = PasswordHash.from_fields(pw_fields, "perm")
        if permanent is not None and verify_password(password, permanent):
            return "permanent"
        return "bad"

    async def _attempts_left(self, msisdn: str) -> int:
        failures = await self._redis.hget(keys.password(msisdn), "failures")
        return max(0, self._settings.max_failures - int(failures or 0))

    # -- journal -------------------------------------------------------------------------------

    async def journal(self, msisdn: str, limit: int | None = None) -> list[dict[str, Any]]:
        check_msisdn(msisdn)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise LedgerValueError("limit", "out_of_range")
        if limit == 0:
            return []
        start = 0 if limit is None else -limit
        raw = await self._redis.lrange(keys.journal(msisdn), start, -1)
        return [_normalize_entry(json.loads(item)) for item in raw]
