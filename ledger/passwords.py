"""Password hashing, one-time codes and the permanent-password policy (pure, no I/O).

Only a salted scrypt hash and its parameters are ever stored; the clear text lives in memory for
the duration of one call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

OTP_DIGITS = 6
MIN_PERMANENT_LENGTH = 6
SALT_BYTES = 16
HASH_BYTES = 32
DEFAULT_N = 2**14
_R = 8
_P = 1
# Memory scrypt needs is 128 * r * n bytes; leave headroom above hashlib's 32 MiB default.
_MAXMEM = 256 * 1024 * 1024


@dataclass(frozen=True)
class PasswordHash:
    salt_hex: str
    hash_hex: str
    n: int
    r: int = _R
    p: int = _P

    def to_fields(self, prefix: str) -> dict[str, str]:
        return {
            f"{prefix}_salt": self.salt_hex,
            f"{prefix}_hash": self.hash_hex,
            f"{prefix}_n": str(self.n),
            f"{prefix}_r": str(self.r),
            f"{prefix}_p": str(self.p),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str], prefix: str) -> PasswordHash | None:
        try:
            return cls(
                salt_hex=fields[f"{prefix}_salt"],
                hash_hex=fields[f"{prefix}_hash"],
                n=int(fields[f"{prefix}_n"]),
                r=int(fields[f"{prefix}_r"]),
                p=int(fields[f"{prefix}_p"]),
            )
        except (KeyError, ValueError):
            return None


def _derive(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES
    )


def hash_password(secret: str, n: int = DEFAULT_N) -> PasswordHash:
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(salt_hex=salt.hex(), hash_hex=_derive(secret, salt, n, _R, _P).hex(), n=n)


def verify_password(secret: str, stored: PasswordHash) -> bool:
    try:
        salt = bytes.fromhex(stored.salt_hex)
        expected = bytes.fromhex(stored.hash_hex)
        actual = _derive(secret, salt, stored.n, stored.r, stored.p)
    except ValueError:
        # A damaged record or absurd parameters: no secret can match it.
        return False
    return hmac.compare_digest(actual, expected)


def new_otp() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(OTP_DIGITS))


def policy_violation(password: str) -> str | None:
    """The first rule a permanent password breaks, or None when it is acceptable."""
    if len(password) < MIN_PERMANENT_LENGTH:
        return "too_short"
    if not any(c.islower() for c in password):
        return "no_lower"
    if not any(c.isupper() for c in password):
        return "no_upper"
    if not any(c.isdigit() for c in password):
        return "no_digit"
    if all(c.isalnum() for c in password):
        return "no_symbol"
    return None
