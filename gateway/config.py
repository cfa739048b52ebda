"""One validated configuration document: embedded defaults < config.yaml < environment < flags.

Every key has a default, so `ussdsim serve` runs with no file at all; config.yaml at the top of
the repository spells the same defaults out for people to edit. The `smpp` and `sms` sections are
`sms.config`'s (their keys, defaults and checks live with the SMS side); this module composes
them with the rest and reads the layers.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.harness.faults import Persona
from gateway.ussd.dialects import BUILT_IN, DEFAULT_DIALECT, DeclarativeSpec, known_dialects
from ledger.money import MoneySettings
from ledger.store_client import cluster_seed_url
from shared.settings import StrictSection, split_hostport
from sms.config import SmppAccount as SmppAccount  # `development_smpp_account`'s type, for callers
from sms.config import SmppConfig, SmsConfig


class HttpConfig(StrictSection):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # a client must finish its request line and headers, and then its body, within this time;
    # an idle keep-alive connection is closed after it too
    read_timeout_s: float = Field(default=30, gt=0, le=3600)
    max_connections_per_ip: int = Field(default=1024, ge=0)  # 0: no limit
    # Browser pages on these origins ("https://tests.example:8443") may call the API; a
    # request from any other page (its Origin header) is refused 403 cross_origin.
    allowed_origins: list[str] = Field(default_factory=list)
    # Host names this server answers to besides the listen address and loopback; any other
    # Host is refused 421 unknown_host (DNS rebinding). With a handset token in force only
    # this list restricts Host, so containers can reach the server by their service name.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Handset calls (/v1/ussd, /v1/sms, inboxes) need `Authorization: Bearer` with this token
    # (or the operator token). Unset: open on loopback; generated and printed when `serve`
    # listens beyond loopback.
    handset_token: str | None = Field(default=None, min_length=1)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_hostport(v)
        return v

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"expected an origin like https://host:port, got {origin!r}")
        return [o.lower() for o in v]

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [h.lower() for h in v]

    @property
    def host_port(self) -> tuple[str, int]:
        return split_hostport(self.listen)

    @property
    def on_loopback(self) -> bool:
        return _loopback(self.host_port[0])


class RedisConfig(StrictSection):
    url: str = "embedded"
    data_dir: str = "./var"
    durability: Literal["default", "strict"] = "default"
    # A command unanswered this long fails (HTTP 503 store_unavailable) instead of hanging.
    socket_timeout_s: float = Field(default=2.0, gt=0, le=300)
    max_connections: int = Field(default=256, ge=4, le=10000)
    # The embedded store's bound on its data (bytes, or "512MiB", "2GB"): a write beyond it is
    # refused and nothing is evicted. An external server keeps its own setting.
    maxmemory: ByteSize = Field(default=ByteSize(1 << 30), ge=1 << 20)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if v != "embedded" and not v.startswith(schemes):
            raise ValueError(
                "expected 'embedded' or a redis://, rediss://, unix:// or redis+cluster:// URL"
            )
        if v.startswith(schemes[3:]):
            cluster_seed_url(v)  # host:port present, no database number
        return v


class ClockConfig(StrictSection):
    mode: Literal["real", "virtual"] = "real"
    # A virtual clock starts here (epoch seconds) the first time a store is used, so runs repeat.
    virtual_start: float = 1767243600.0  # 2026-01-01T05:00:00Z


class UssdConfig(StrictSection):
    input_timeout_s: float = Field(default=60, gt=0)
    session_lifetime_s: float = Field(default=180, gt=0)
    app_timeout_s: float = Field(default=15, gt=0)
    max_input_len: int = Field(default=182, ge=1, le=182)
    # MCC+MNC sent to external applications as networkCode.
    network_code: str = Field(default="25001", pattern=r"^[0-9]{5,6}$")
    # Menus a blocked number may still use; every other code answers "number blocked".
    blocked_allowed_menus: list[str] = Field(default_factory=lambda: ["balance", "unblock"])


class Route(StrictSection):
    """A dialled code and what answers it: exactly one of a built-in menu, a URL, an SMPP client."""

    code: str  # "*111#" exact service-code route, or "*384*" prefix route
    menu: str | None = None
    url: str | None = None  # an external application over HTTP, speaking `dialect`
    # a built-in dialect's name (gateway/ussd/dialects/) or a declarative {request, reply}
    dialect: str | DeclarativeSpec = DEFAULT_DIALECT
    notify_url: str | None = None  # where an africastalking app wants its end-of-session notices
    timeout_s: float | None = Field(default=None, gt=0)  # overrides ussd.app_timeout_s
    smpp: str | None = None  # the system_id of an SMPP client serving USSD

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not v or v[0] not in "*#" or not set(v) <= set("0123456789*#+"):
            raise ValueError(f"expected a USSD code like *111# or a prefix like *384*, got {v!r}")
        return v

    @field_validator("url", "notify_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v

    @field_validator("dialect", mode="before")
    @classmethod
    def _dialect(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in BUILT_IN:
            raise ValueError(
                f"unknown dialect {v!r}; known: {known_dialects()}, "
                "or a mapping with request and reply"
            )
        if isinstance(v, dict):
            try:
                return DeclarativeSpec.model_validate(v)
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc'])}: "
                    + err["msg"].removeprefix("Value error, ")
                    for err in e.errors()
                )
                raise ValueError(f"declarative dialect: {problems}") from e
        return v

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        targets = [k for k in ("menu", "url", "smpp") if getattr(self, k) is not None]
        if len(targets) != 1:
            raise ValueError(
                f"route {self.code}: needs exactly one of menu, url, smpp (got {targets or 'none'})"
            )
        if self.notify_url is not None and self.url is None:
            raise ValueError(f"route {self.code}: notify_url goes with url only")
        # Compared with the default rather than "was it written": a worker reads back the whole
        # configuration as JSON, where every field is written.
        if self.dialect != DEFAULT_DIALECT and self.url is None:
            raise ValueError(f"route {self.code}: dialect goes with url only")
        if self.notify_url is not None and self.dialect != DEFAULT_DIALECT:
            raise ValueError(
                f"route {self.code}: notify_url is for the {DEFAULT_DIALECT} dialect; other "
                "dialects report a session end to the url itself"
            )
        if self.timeout_s is not None and self.menu is not None:
            raise ValueError(f"route {self.code}: timeout_s is for applications, not menus")
        return self


class SubscribersConfig(StrictSection):
    auto_provision: bool = True
    initial_balance_kop: int = Field(default=10000, ge=0)
    default_tariff: str = "basic"
    default_lang: Literal["ru", "en"] = "ru"


class PasswordsConfig(StrictSection):
    otp_ttl_s: int = Field(default=172800, gt=0)
    max_failures: int = Field(default=3, ge=1)
    issue_limit_count: int = Field(default=5, ge=1)
    issue_limit_window_s: int = Field(default=3600, ge=1)
    # Login attempts (right or wrong) per number, and per HTTP client address across numbers.
    login_limit_count: int = Field(default=10, ge=1)
    login_limit_window_s: int = Field(default=600, ge=1)
    login_address_limit_count: int = Field(default=30, ge=0)  # 0: no per-address limit
    login_address_limit_window_s: int = Field(default=600, ge=1)
    # Password issues requested over HTTP (USSD or SMS) per client address, across numbers.
    issue_address_limit_count: int = Field(default=20, ge=0)  # 0: no per-address limit
    issue_address_limit_window_s: int = Field(default=3600, ge=1)
    scrypt_n: int = Field(default=2**14, ge=2**4)
    sender: str = "3339"

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two")
        return v


class OffersConfig(StrictSection):
    # A catalogue YAML (tariffs, options, rewards, point rates, call detail); empty means the
    # catalogue shipped inside the package.
    catalogue: str | None = None
    # Seconds from a call detail order to its "ready" SMS; empty keeps the catalogue's value.
    detail_ready_after_s: int | None = Field(default=None, ge=0, le=7 * 86400)
    # Where "your call detail is ready" texts come from: the operator's info number.
    sender: str = "0890"


class MoneyConfig(StrictSection):
    """Transfers, promised payments and number groups (ledger.money.MoneySettings)."""

    transfer_min_kop: int = Field(default=100, ge=1)
    transfer_max_kop: int = Field(default=1_500_000, ge=1)
    transfer_daily_limit_kop: int = Field(default=3_000_000, ge=0)
    transfer_fee_bp: int = Field(default=100, ge=0, le=10_000)  # hundredths of a percent
    transfer_fee_min_kop: int = Field(default=1000, ge=0)
    promise_amount_kop: int = Field(default=10_000, ge=1)
    promise_days: int = Field(default=3, ge=1)
    promise_threshold_kop: int = Field(default=3000, ge=0)
    group_join_delay_s: int = Field(default=600, ge=0)
    # Ledger-clock seconds a closed transfer answers a repeat of its transfer_id; then forgotten.
    transfer_retention_s: int = Field(default=7 * 86400, ge=60)

    @model_validator(mode="after")
    def _bounds(self) -> MoneyConfig:
        if self.transfer_min_kop > self.transfer_max_kop:
            raise ValueError("transfer_min_kop is greater than transfer_max_kop")
        self.settings()  # the ledger's own bounds (e.g. the largest amount) apply too
        return self

    def settings(self) -> MoneySettings:
        return MoneySettings(**self.model_dump())


class MenusConfig(StrictSection):
    # Empty means the default operator profile shipped inside the package.
    paths: list[str] = Field(default_factory=list)


class Config(StrictSection):
    http: HttpConfig = Field(default_factory=HttpConfig)
    smpp: SmppConfig = Field(default_factory=SmppConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    ussd: UssdConfig = Field(default_factory=UssdConfig)
    subscribers: SubscribersConfig = Field(default_factory=SubscribersConfig)
    passwords: PasswordsConfig = Field(default_factory=PasswordsConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    menus: MenusConfig = Field(default_factory=MenusConfig)
    money: MoneyConfig = Field(default_factory=MoneyConfig)
    offers: OffersConfig = Field(default_factory=OffersConfig)
    routes: list[Route] = Field(
        default_factory=lambda: [
            Route(code="*111#", menu="selfcare"),
            Route(code="*100#", menu="balance"),
            Route(code="*111*157#", menu="unblock"),
        ]
    )
    # Fault personas active from the start, by scope: global, smpp:SYSTEM_ID, app:ROUTE_CODE.
    faults: dict[str, Persona] = Field(default_factory=dict)
    admin_token: str | None = None
    # Server processes sharing the HTTP and SMPP ports (SO_REUSEPORT) and one Redis.
    workers: int = Field(default=1, ge=1, le=64)
    region: str = "RU"
    base_dir: str = "."  # where relative paths in the file are resolved from; set by the loader


class ConfigError(Exception):
    pass


ENV_KEYS = {
    "USSDSIM_HTTP": ("http", "listen"),
    "USSDSIM_SMPP": ("smpp", "listen"),
    "USSDSIM_REDIS": ("redis", "url"),
    "USSDSIM_DATA": ("redis", "data_dir"),
    "USSDSIM_MAXMEMORY": ("redis", "maxmemory"),
    "USSDSIM_CLOCK": ("clock", "mode"),
    "USSDSIM_ADMIN_TOKEN": ("admin_token",),
    "USSDSIM_HANDSET_TOKEN": ("http", "handset_token"),
    "USSDSIM_WORKERS": ("workers",),
}


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: parent is not a mapping")
    node[path[-1]] = value


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top)"
        hint = _closest_key(e["loc"]) if e["type"] == "extra_forbidden" else None
        lines.append(f"{where}: {e['msg']}" + (f" (did you mean {hint}?)" if hint else ""))
    return "; ".join(lines)


def _closest_key(loc: tuple[int | str, ...]) -> str | None:
    """The known key nearest to a mistyped one (`http.listn` -> `listen`), found by walking the
    models along the error's location: list indexes and mapping keys step into the item type."""
    node: Any = Config
    for part in loc[:-1]:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            node = _model_in(field.annotation) if field is not None else None
        elif get_origin(node) in (list, dict):  # `part` is the index or the mapping key
            node = _model_in(get_args(node)[-1])
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return None
    close = difflib.get_close_matches(str(loc[-1]), list(node.model_fields), n=1)
    return close[0] if close else None


def _model_in(annotation: Any) -> Any:
    """`X | None` is X; containers and models are themselves."""
    if get_origin(annotation) in (list, dict) or not get_args(annotation):
        return annotation
    models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


DEV_SMPP_SHORT_NUMBER = "7777"


def development_smpp_account(env: Mapping[str, str] | None = None) -> SmppAccount:
    """The account `serve` offers when nothing configures one, so an ESME can bind on first
    start: `USSDSIM_SMPP_SYSTEM_ID` / `USSDSIM_SMPP_PASSWORD`, else `ussdsim` and a fresh
    8-character password (SMPP 3.4's limit)."""
    environ = os.environ if env is None else env
    return SmppAccount(
        system_id=environ.get("USSDSIM_SMPP_SYSTEM_ID") or "ussdsim",
        password=environ.get("USSDSIM_SMPP_PASSWORD") or secrets.token_hex(4),
        short_numbers=[DEV_SMPP_SHORT_NUMBER],
    )


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
    default_smpp_account: SmppAccount | None = None,
) -> Config:
    """Read the file (if any), then environment variables, then flag overrides; validate once.

    `default_smpp_account` is used when no layer says `smpp.accounts` (an empty list turns SMPP
    off), on any listen address: its password, chosen or generated, is what an ESME must give."""
    doc: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"{p}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        doc = loaded or {}
        base = p.resolve().parent
    environ = os.environ if env is None else env
    for var, key_path in ENV_KEYS.items():
        if environ.get(var):
            _set(doc, key_path, environ[var])
    for key_path, value in (overrides or {}).items():
        if value is not None:
            _set(doc, key_path, value)
    doc["base_dir"] = str(base)
    smpp_doc = doc.get("smpp")
    if default_smpp_account is not None and (
        smpp_doc is None or (isinstance(smpp_doc, dict) and "accounts" not in smpp_doc)
    ):
        _set(doc, ("smpp", "accounts"), [default_smpp_account.model_dump()])
    try:
        return Config.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(f"{path or 'configuration'}: {_describe(e)}") from e


def with_handset_token(config: Config) -> tuple[Config, bool]:
    """The configuration `serve` runs: beyond loopback a handset token is required, so one is
    generated when none is set (and whether it was, so it can be printed once)."""
    if config.http.handset_token is not None or config.http.on_loopback:
        return config, False
    http = config.http.model_copy(update={"handset_token": secrets.token_urlsafe(24)})
    return config.model_copy(update={"http": http}), True


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def resolve_path(config: Config, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(config.base_dir) / p
