"""USSD over SMPP in the conventions SMPP clients are written for, one small sans-IO module
each; an account's `ussd_variant` picks one (default `smpp34`). `base` says what a variant is.
"""

from __future__ import annotations

from sms.smpp.ussd_variants import mica, sixdee, smpp34
from sms.smpp.ussd_variants.base import UssdVariant

DEFAULT = "smpp34"
VARIANTS: dict[str, UssdVariant] = {v.VARIANT.name: v.VARIANT for v in (smpp34, mica, sixdee)}


def known() -> str:
    return ", ".join(sorted(VARIANTS))
