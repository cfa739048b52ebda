"""One validated configuration document: embedded defaults < config.yaml < environment < flags.

Every key has a default here, so `ussdsim serve` runs with no file at all; config.yaml at the
top of the repository spells the same defaults out for people to edit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _split_hostport(v)
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        return _split_hostport(self.listen)


class SmppAccount(_Strict):
    system_id: str = Field(min_length=1, max_length=15)
    password: str = Field(min_length=1, max_length=8)


class SmppConfig(_Strict):
    listen: str = "127.0.0.1:2775"
    accounts: list[SmppAccount] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _split_hostport(v)
        return v


class RedisConfig(_Strict):
    url: str = "embedded"
    data_dir: str = "./var"
    durability: Literal["default", "strict"] = "default"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v != "embedded" and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected 'embedded' or a redis://, rediss:// or unix:// URL")
        return v


class ClockConfig(_Strict):
    mode: Literal["real", "virtual"] = "real"
    # A virtual clock starts here (epoch seconds) the first time a store is used, so runs repeat.
    virtual_start: float = 1767243600.0  # 2026-01-01T05:00:00Z


class UssdConfig(_Strict):
    input_timeout_s: float = Field(default=60, gt=0)
    session_lifetime_s: float = Field(default=180, gt=0)
    app_timeout_s: float = Field(default=15, gt=0)
    max_input_len: int = Field(default=182, ge=1, le=182)
    # Menus a blocked number may still use; every other code answers "number blocked".
    blocked_allowed_menus: list[str] = Field(default_factory=lambda: ["balance"])


class Route(_Strict):
    code: str  # "*111#" exact service-code route, or "*384*" prefix route
    menu: str


class SubscribersConfig(_Strict):
    auto_provision: bool = True
    initial_balance_kop: int = Field(default=10000, ge=0)
    default_tariff: str = "basic"
    default_lang: Literal["ru", "en"] = "ru"


class PasswordsConfig(_Strict):
    otp_ttl_s: int = Field(default=172800, gt=0)
    max_failures: int = Field(default=3, ge=1)
    issue_limit_count: int = Field(default=5, ge=1)
    issue_limit_window_s: int = Field(default=3600, ge=1)
    scrypt_n: int = Field(default=2**14, ge=2**4)
    sender: str = "3339"

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two")
        return v


class ShortNumber(_Strict):
    handler: Literal["password", "info", "echo"]


class SmsConfig(_Strict):
    short_numbers: dict[str, ShortNumber] = Field(
        default_factory=lambda: {
            "3339": ShortNumber(handler="password"),
            "0890": ShortNumber(handler="info"),
        }
    )
    inbox_max_messages: int = Field(default=1000, ge=1)
    max_text_chars: int = Field(default=1600, ge=1)
    texts: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "password": {
                "ru": (
                    "Пароль для входа в личный кабинет: {code}. "
                    "Действует 48 ч. Никому не сообщайте."
                ),
                "en": "Your self-service password: {code}. Valid for 48 h. Do not share it.",
            },
            "password_rate_limited": {
                "ru": "Слишком много запросов пароля. Повторите через {minutes} мин.",
                "en": "Too many password requests. Try again in {minutes} min.",
            },
            "help": {
                "ru": "Чтобы получить пароль, отправьте слово Пароль на номер 3339.",
                "en": "To get a password, text Password to 3339.",
            },
            "info": {
                "ru": "Справочная служба: баланс *100#, меню *111#, пароль *111*25#.",
                "en": "Help desk: balance *100#, menu *111#, password *111*25#.",
            },
            "blocked": {
                "ru": "Номер заблокирован. Отправка SMS недоступна.",
                "en": "The number is blocked. Sending SMS is not available.",
            },
        }
    )


class MenusConfig(_Strict):
    # Empty means the default operator profile shipped inside the package.
    paths: list[str] = Field(default_factory=list)


class Config(_Strict):
    http: HttpConfig = Field(default_factory=HttpConfig)
    smpp: SmppConfig = Field(default_factory=SmppConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    ussd: UssdConfig = Field(default_factory=UssdConfig)
    subscribers: SubscribersConfig = Field(default_factory=SubscribersConfig)
    passwords: PasswordsConfig = Field(default_factory=PasswordsConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    menus: MenusConfig = Field(default_factory=MenusConfig)
    routes: list[Route] = Field(
        default_factory=lambda: [
            Route(code="*111#", menu="selfcare"),
            Route(code="*100#", menu="balance"),
        ]
    )
    admin_token: str | None = None
    region: str = "RU"
    base_dir: str = "."  # where relative paths in the file are resolved from; set by the loader


class ConfigError(Exception):
    pass


ENV_KEYS = {
    "USSDSIM_HTTP": ("http", "listen"),
    "USSDSIM_SMPP": ("smpp", "listen"),
    "USSDSIM_REDIS": ("redis", "url"),
    "USSDSIM_DATA": ("redis", "data_dir"),
    "USSDSIM_CLOCK": ("clock", "mode"),
    "USSDSIM_ADMIN_TOKEN": ("admin_token",),
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
        lines.append(f"{where}: {e['msg']}")
    return "; ".join(lines)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, ...], Any] | None = None,
) -> Config:
    """Read the file (if any), then environment variables, then flag overrides; validate once."""
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
    try:
        return Config.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(f"{path or 'configuration'}: {_describe(e)}") from e


def resolve_path(config: Config, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(config.base_dir) / p
