"""The operator catalogue: tariffs, options, rewards, bonus point rates and call detail settings.

It is read from YAML and checked strictly (unknown keys, duplicate ids, dangling references and
names too long for a USSD screen line are refused with a message naming the place).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# A Russian USSD screen holds 80 UCS-2 characters; a menu line is "N <name> <price>", so a name
# keeps well under half of it.
MAX_NAME_LENGTH: Final = 32
DETAIL_FORMATS: Final = ("html", "pdf", "xml", "xlsx")
POINT_CHANNELS: Final = ("mobile", "shop", "home", "partner", "partner_bank")

Identifier = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
Kopecks = Annotated[int, Field(ge=0, le=10**10)]
Quantity = Annotated[int, Field(ge=0, le=10**7)]
KopPerPoint = Annotated[int, Field(ge=1, le=10**7)]
DetailFormat = Literal["html", "pdf", "xml", "xlsx"]


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Names(_Strict):
    ru: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]
    en: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.ru


class Packages(_Strict):
    minutes: Quantity = 0
    sms: Quantity = 0
    mb: Quantity = 0


class Tariff(_Strict):
    id: Identifier
    names: Names
    monthly_fee_kop: Kopecks
    packages: Packages
    change_fee_kop: Kopecks = 0


class Option(_Strict):
    id: Identifier
    names: Names
    price_kop: Kopecks
    period_days: Annotated[int, Field(ge=0, le=366)]
    kind: Literal["option", "subscription"] = "option"


class Grant(_Strict):
    """What a reward gives: exactly one of package units or a free option."""

    minutes: Annotated[int, Field(ge=1, le=10**6)] | None = None
    sms: Annotated[int, Field(ge=1, le=10**6)] | None = None
    mb: Annotated[int, Field(ge=1, le=10**7)] | None = None
    option: Identifier | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [name for name in ("minutes", "sms", "mb", "option") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("a reward grants exactly one of minutes, sms, mb or option")
        return self

    def units(self) -> dict[str, int]:
        """Package units granted ({} for an option)."""
        return {
            name: value
            for name in ("minutes", "sms", "mb")
            if (value := getattr(self, name)) is not None
        }


class Reward(_Strict):
    id: Identifier
    names: Names
    points: Annotated[int, Field(ge=1, le=10**7)]
    grants: Grant


class PointRules(_Strict):
    """Kopecks to spend for one bonus point, per channel (seed l.151-157)."""

    mobile: KopPerPoint = 500
    shop: KopPerPoint = 3000
    home: KopPerPoint = 500
    partner: KopPerPoint = 3000
    partner_bank: KopPerPoint = 2000

    def rate(self, channel: str) -> int:
        if channel not in POINT_CHANNELS:
            raise KeyError(channel)
        rate: int = getattr(self, channel)
        return rate


class DetailSettings(_Strict):
    min_days: Annotated[int, Field(ge=1, le=366)] = 7
    max_days: Annotated[int, Field(ge=1, le=366)] = 183
    formats: Annotated[list[DetailFormat], Field(min_length=1)] = list(DETAIL_FORMATS)
    ready_after_s: Annotated[int, Field(ge=0, le=7 * 86400)] = 300

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_days > self.max_days:
            raise ValueError("min_days is greater than max_days")
        if len(set(self.formats)) != len(self.formats):
            raise ValueError("formats are listed twice")
        return self


class Catalogue(_Strict):
    tariffs: Annotated[list[Tariff], Field(min_length=1)]
    options: list[Option] = []
    rewards: list[Reward] = []
    points: PointRules = PointRules()
    detail: DetailSettings = DetailSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for section, items in (
            ("tariffs", self.tariffs),
            ("options", self.options),
            ("rewards", self.rewards),
        ):
            ids = [item.id for item in items]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"{section}: duplicate id {', '.join(duplicates)}")
        option_ids = {option.id for option in self.options}
        for reward in self.rewards:
            target = reward.grants.option
            if target is not None and target not in option_ids:
                raise ValueError(f"rewards: {reward.id} grants unknown option {target}")
        return self

    def tariff(self, tariff_id: str) -> Tariff | None:
        return next((t for t in self.tariffs if t.id == tariff_id), None)

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)

    def subscriptions(self) -> list[Option]:
        return [o for o in self.options if o.kind == "subscription"]


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        place = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {place}: {item['msg']}")
    return "\n".join(lines)


def parse_catalogue(text: str, source: str = "<catalogue>") -> Catalogue:
    """YAML text -> Catalogue; raises CatalogueError naming the source and every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: the top level must be a mapping")
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        raise CatalogueError(f"{source}: invalid catalogue:\n{_describe(exc)}") from exc


def load_catalogue(path: str | Path) -> Catalogue:
    location = Path(path)
    try:
        text = location.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{location}: cannot read: {exc}") from exc
    return parse_catalogue(text, str(location))


@cache
def default_catalogue() -> Catalogue:
    """The catalogue shipped with the package (ledger/profiles/catalogue.yaml)."""
    resource = resources.files("ledger") / "profiles" / "catalogue.yaml"
    return parse_catalogue(resource.read_text("utf-8"), "ledger/profiles/catalogue.yaml")
