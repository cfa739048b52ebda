"""Specialised body decoders and encoders, generated at import time from the tables in `pdu.py`.

The table walk in `codec.py` interprets a field table for every PDU; these functions are the same
tables turned into straight-line Python once, with one precomputed `struct` per run of fixed-width
fields. They cover the well-formed case only: on any input they would not decode or encode exactly
as the walk does, they raise `Fallback`, and the codec asks the walk, which then gives the precise
error (or accepts a value the fast path is too strict about, such as an IntEnum). So the tables
stay the one source of truth: a compiled function says "the same result as the walk" or nothing.

Tables with repeated groups (submit_multi and its response) are not compiled; the walk serves them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sms.smpp.constants import CommandId
from sms.smpp.pdu import BODIES, INT_SIZES, Field, Kind, derived_names

BodyDecoder = Callable[[bytes, int], tuple[dict[str, Any], int]]
BodyEncoder = Callable[[Mapping[str, Any]], bytes]

_STRUCT_CODES: Mapping[Kind, str] = MappingProxyType(
    {Kind.INT1: "B", Kind.INT2: "H", Kind.INT4: "I"}
)


class Fallback(Exception):
    """The compiled function declines this input; the table walk decides."""


def compilable(spec: Sequence[Field]) -> bool:
    return all(f.kind is not Kind.RECORDS for f in spec)


def _runs(spec: Sequence[Field]) -> list[tuple[int, list[Field]]]:
    """The table cut into runs of fixed-width ints and single variable-width fields."""
    runs: list[tuple[int, list[Field]]] = []
    for index, f in enumerate(spec):
        if f.kind in INT_SIZES and runs and runs[-1][1][-1].kind in INT_SIZES:
            runs[-1][1].append(f)
        else:
            runs.append((index, [f]))
    return runs


def _struct_of(run: Sequence[Field]) -> struct.Struct:
    return struct.Struct(">" + "".join(_STRUCT_CODES[f.kind] for f in run))


def _compile(source: str, env: dict[str, Any], name: str) -> Any:
    namespace: dict[str, Any] = dict(env)
    exec(compile(source, f"<smpp {name}>", "exec"), namespace)
    return namespace[name]


def decoder_source(spec: Sequence[Field]) -> tuple[str, dict[str, Any]]:
    """Python source of `decode(data, pos) -> (fields, pos)` for one table, and its globals."""
    local = {f.name: f"v{i}" for i, f in enumerate(spec)}
    env: dict[str, Any] = {"Fallback": Fallback}
    lines = ["def decode(data, pos):", "    n = len(data)"]
    for start, run in _runs(spec):
        f = run[0]
        if f.kind in INT_SIZES:
            packer = _struct_of(run)
            env[f"unpack{start}"] = packer.unpack_from
            targets = "".join(f"{local[g.name]}, " for g in run)
            lines += [
                f"    if pos + {packer.size} > n: raise Fallback",
                f"    ({targets}) = unpack{start}(data, pos)",
                f"    pos += {packer.size}",
            ]
        elif f.kind is Kind.CSTRING:
            lines += [
                "    end = data.find(b'\\x00', pos)",
                f"    if end < 0 or end - pos >= {f.max_len}: raise Fallback",
                f"    {local[f.name]} = data[pos:end].decode('latin-1')",
                "    pos = end + 1",
            ]
        else:  # octets; compilable() keeps records out
            if f.length_field is None:
                raise ValueError(f"{f.name}: octets without a length field")
            size = local[f.length_field]
            lines += [
                f"    if {size} > {f.max_len} or pos + {size} > n: raise Fallback",
                f"    {local[f.name]} = data[pos:pos + {size}]",
                f"    pos += {size}",
            ]
    derived = derived_names(tuple(spec))
    items = ", ".join(f"{f.name!r}: {local[f.name]}" for f in spec if f.name not in derived)
    lines.append(f"    return {{{items}}}, pos")
    return "\n".join(lines) + "\n", env


def encoder_source(spec: Sequence[Field]) -> tuple[str, dict[str, Any]]:
    """Python source of `encode(values) -> body octets` for one table, and its globals."""
    local = {f.name: f"v{i}" for i, f in enumerate(spec)}
    derived = derived_names(tuple(spec))
    env: dict[str, Any] = {
        "Fallback": Fallback,
        "allowed": frozenset(f.name for f in spec) - derived,
    }
    lines = ["def encode(values):", "    if not values.keys() <= allowed: raise Fallback"]
    for f in spec:
        if f.name in derived:
            continue
        v = local[f.name]
        if f.kind in INT_SIZES:
            limit = 1 << (8 * INT_SIZES[f.kind])
            lines += [
                f"    {v} = values.get({f.name!r}, 0)",
                # plain ints first; an int subclass (IntEnum, IntFlag) but never a bool
                f"    if type({v}) is not int and (type({v}) is bool or not isinstance({v}, int)):"
                " raise Fallback",
                f"    if not 0 <= {v} < {limit}: raise Fallback",
            ]
        elif f.kind is Kind.CSTRING:
            lines += [
                f"    {v} = values.get({f.name!r}, '')",
                f"    if type({v}) is not str: raise Fallback",
                f"    {v} = {v}.encode('latin-1')",  # UnicodeEncodeError: the walk decides
                f"    if len({v}) >= {f.max_len} or b'\\x00' in {v}: raise Fallback",
            ]
        else:
            lines += [
                f"    {v} = values.get({f.name!r}, b'')",
                f"    if type({v}) is not bytes or len({v}) > {f.max_len}: raise Fallback",
            ]
    for f in spec:
        if f.name in derived:
            measured = next(g for g in spec if g.length_field == f.name)
            lines.append(f"    {local[f.name]} = len({local[measured.name]})")
    parts: list[str] = []
    for start, run in _runs(spec):
        f = run[0]
        if f.kind in INT_SIZES:
            env[f"pack{start}"] = _struct_of(run).pack
            parts.append(f"pack{start}({', '.join(local[g.name] for g in run)})")
        elif f.kind is Kind.CSTRING:
            parts += [local[f.name], "b'\\x00'"]
        else:
            parts.append(local[f.name])
    lines.append(f"    return b''.join(({''.join(p + ', ' for p in parts)}))")
    return "\n".join(lines) + "\n", env


def compile_decoder(spec: Sequence[Field]) -> BodyDecoder:
    source, env = decoder_source(spec)
    decoder: BodyDecoder = _compile(source, env, "decode")
    return decoder


def compile_encoder(spec: Sequence[Field]) -> BodyEncoder:
    source, env = encoder_source(spec)
    encoder: BodyEncoder = _compile(source, env, "encode")
    return encoder


DECODERS: Mapping[int, BodyDecoder] = MappingProxyType(
    {int(c): compile_decoder(spec) for c, spec in BODIES.items() if compilable(spec)}
)
ENCODERS: Mapping[int, BodyEncoder] = MappingProxyType(
    {int(c): compile_encoder(spec) for c, spec in BODIES.items() if compilable(spec)}
)
COMMAND_NAMES: Mapping[int, str] = MappingProxyType({int(c): c.name for c in CommandId})
