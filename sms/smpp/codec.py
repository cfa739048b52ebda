"""Bytes <-> `Pdu`, driven by the tables in `pdu.py`; a streaming `Framer` for a TCP byte stream.

Decoding never raises anything but `DecodeError`, which carries the command_id, the sequence and
the command_status the peer should be answered with. `Framer.feed` never raises at all: errors come
back in the list, in stream order, next to the PDUs.

A response whose body is empty decodes with `fields == {}` (SMPP 3.4 omits the body of an error
response); encoding a response with `fields == {}` writes an empty body, so both directions agree.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from sms.smpp.compiled import COMMAND_NAMES, DECODERS, ENCODERS, Fallback
from sms.smpp.constants import (
    DEFAULT_MAX_PDU_LENGTH,
    HEADER_LENGTH,
    RESPONSE_BIT,
    CommandId,
    Status,
    is_response,
)
from sms.smpp.pdu import (
    BODIES,
    COMMANDS_BY_NAME,
    INT_SIZES,
    TLV_BY_TAG,
    Field,
    Kind,
    Pdu,
    Tlv,
    TlvValue,
    default_value,
    derived_names,
)

_HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")


class DecodeError(Exception):
    """Bytes that are not a valid PDU. `status` is the command_status to answer with."""

    fatal = False

    def __init__(self, status: Status, reason: str, command_id: int = 0, sequence: int = 0):
        super().__init__(f"{status.name}: {reason} (command_id=0x{command_id:08X}, seq={sequence})")
        self.status = status
        self.reason = reason
        self.command_id = command_id
        self.sequence = sequence

    @property
    def command(self) -> str | None:
        """The command name when the command_id is known."""
        try:
            return CommandId(self.command_id).name
        except ValueError:
            return None

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, DecodeError)
            and (other.status, other.reason, other.command_id, other.sequence)
            == (self.status, self.reason, self.command_id, self.sequence)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.status, self.reason, self.command_id, self.sequence))


class FramingError(DecodeError):
    """The stream itself is broken (impossible command_length): nothing after it can be trusted."""

    fatal = True


class EncodeError(ValueError):
    """A `Pdu` whose values do not fit its command's table."""


class _BodyError(Exception):
    def __init__(self, status: Status, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- decoding ---------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise _BodyError(Status.RINVCMDLEN, f"{what}: needs {n} octets, {self.remaining} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def cstring(self, f: Field) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise _BodyError(Status.RINVCMDLEN, f"{f.name}: no terminating NUL")
        if end - self.pos + 1 > f.max_len:
            raise _BodyError(f.invalid, f"{f.name}: longer than {f.max_len - 1} characters")
        text = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return text


def _read_fields(reader: _Reader, spec: Sequence[Field]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    counts: dict[str, int] = {}
    derived = derived_names(tuple(spec))
    for f in spec:
        value = _read_field(reader, f, counts)
        if f.name in derived:
            counts[f.name] = value
        else:
            values[f.name] = value
    return values


def _read_field(reader: _Reader, f: Field, counts: Mapping[str, int]) -> Any:
    if f.kind in INT_SIZES:
        return int.from_bytes(reader.take(INT_SIZES[f.kind], f.name), "big")
    if f.kind is Kind.CSTRING:
        return reader.cstring(f)
    size = counts[f.length_field] if f.length_field else 0
    if size > f.max_len:
        raise _BodyError(f.too_many or f.invalid, f"{f.name}: {size} exceeds {f.max_len}")
    if f.kind is Kind.OCTETS:
        return reader.take(size, f.name)
    return [_read_item(reader, f) for _ in range(size)]


def _read_item(reader: _Reader, f: Field) -> dict[str, Any]:
    item = _read_fields(reader, f.item)
    if f.variants:
        selector = item[f.item[0].name]
        rest = f.variants.get(selector)
        if rest is None:
            raise _BodyError(f.invalid, f"{f.name}: unknown {f.item[0].name} {selector}")
        item.update(_read_fields(reader, rest))
    return item


def _typed_tlv(tag: int, raw: bytes) -> TlvValue:
    spec = TLV_BY_TAG.get(tag)
    if spec is None:
        return raw
    if spec.kind in INT_SIZES:
        return int.from_bytes(raw, "big") if len(raw) == INT_SIZES[spec.kind] else raw
    if spec.kind is Kind.CSTRING:
        if raw.endswith(b"\x00") and raw.count(b"\x00") == 1:
            return raw[:-1].decode("latin-1")
        return raw
    return raw


def _read_tlvs(reader: _Reader) -> list[Tlv]:
    tlvs: list[Tlv] = []
    while reader.remaining:
        if reader.remaining < _TLV_HEADER.size:
            raise _BodyError(Status.RINVCMDLEN, f"{reader.remaining} trailing octets after body")
        tag, length = _TLV_HEADER.unpack(reader.take(_TLV_HEADER.size, "TLV header"))
        raw = reader.take(length, f"TLV 0x{tag:04X}")
        tlvs.append(Tlv(tag, _typed_tlv(tag, raw)))
    return tlvs


def decode_header(buf: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence) of the first 16 octets."""
    length, command_id, status, sequence = _HEADER.unpack_from(buf)
    return length, command_id, status, sequence


def decode(buf: bytes) -> Pdu:
    """Decode exactly one whole PDU. Raises `DecodeError` (never anything else).

    A compiled decoder (`compiled.py`) handles a well-formed body; anything it declines is
    decoded by walking the table, which gives the same result or the precise error.
    """
    if type(buf) is bytes and len(buf) >= HEADER_LENGTH:
        length, command_id, status, sequence = _HEADER.unpack_from(buf)
        fast = DECODERS.get(command_id)
        if fast is not None and length == len(buf):
            if length == HEADER_LENGTH and command_id & RESPONSE_BIT:
                return Pdu(COMMAND_NAMES[command_id], sequence, status)
            try:
                fields, pos = fast(buf, HEADER_LENGTH)
            except Fallback:
                return decode_by_table(buf)
            tlvs: list[Tlv] = []
            if pos < length:
                reader = _Reader(buf)
                reader.pos = pos
                try:
                    tlvs = _read_tlvs(reader)
                except _BodyError:
                    return decode_by_table(buf)
            return Pdu(COMMAND_NAMES[command_id], sequence, status, fields, tlvs)
    return decode_by_table(buf)


def decode_by_table(buf: bytes) -> Pdu:
    """`decode` by walking the field table, field by field: the reference the fast path obeys."""
    if len(buf) < HEADER_LENGTH:
        raise DecodeError(Status.RINVCMDLEN, f"{len(buf)} octets, shorter than a header")
    length, command_id, status, sequence = decode_header(buf)
    if length != len(buf):
        reason = f"command_length {length} but {len(buf)} octets"
        raise DecodeError(Status.RINVCMDLEN, reason, command_id, sequence)
    try:
        command = CommandId(command_id)
    except ValueError:
        raise DecodeError(Status.RINVCMDID, "unknown command_id", command_id, sequence) from None
    body = buf[HEADER_LENGTH:]
    if not body and is_response(command):
        return Pdu(command.name, sequence, status)
    reader = _Reader(body)
    try:
        fields = _read_fields(reader, BODIES[command])
        tlvs = _read_tlvs(reader)
    except _BodyError as e:
        raise DecodeError(e.status, e.reason, command_id, sequence) from None
    return Pdu(command.name, sequence, status, fields, tlvs)


# --- encoding ---------------------------------------------------------------------------------


def _write_fields(out: bytearray, spec: Sequence[Field], values: Mapping[str, Any]) -> None:
    known = {f.name for f in spec}
    derived = derived_names(tuple(spec))
    unknown = set(values) - (known - derived)
    if unknown:
        raise EncodeError(f"unknown field(s) {sorted(unknown)}")
    for f in spec:
        if f.name in derived:
            measured = next(g for g in spec if g.length_field == f.name)
            measured_value = values.get(measured.name, default_value(measured))
            if not isinstance(measured_value, bytes | bytearray | list):
                _write_field(bytearray(), measured, measured_value)  # raises its EncodeError
            value: Any = len(measured_value)
        else:
            value = values.get(f.name, default_value(f))
        _write_field(out, f, value)


def _write_int(out: bytearray, name: str, size: int, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << (8 * size):
        raise EncodeError(f"{name}: {value!r} is not an unsigned {size}-octet integer")
    out += value.to_bytes(size, "big")


def _write_field(out: bytearray, f: Field, value: Any) -> None:
    if f.kind in INT_SIZES:
        _write_int(out, f.name, INT_SIZES[f.kind], value)
    elif f.kind is Kind.CSTRING:
        out += _cstring_bytes(f.name, value, f.max_len)
    elif f.kind is Kind.OCTETS:
        if not isinstance(value, bytes | bytearray) or len(value) > f.max_len:
            raise EncodeError(f"{f.name}: expected at most {f.max_len} octets")
        out += value
    else:
        if not isinstance(value, list) or len(value) > f.max_len:
            raise EncodeError(f"{f.name}: expected a list of at most {f.max_len} items")
        for item in value:
            _write_item(out, f, item)


def _write_item(out: bytearray, f: Field, item: Any) -> None:
    if not isinstance(item, Mapping):
        raise EncodeError(f"{f.name}: items are dicts, got {item!r}")
    spec = f.item
    if f.variants:
        selector = item.get(f.item[0].name)
        rest = f.variants.get(selector) if isinstance(selector, int) else None
        if rest is None:
            raise EncodeError(f"{f.name}: unknown {f.item[0].name} {selector!r}")
        spec = (*spec, *rest)
    _write_fields(out, spec, item)


def _cstring_bytes(name: str, value: Any, max_len: int) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"{name}: expected str, got {value!r}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise EncodeError(f"{name}: {value!r} has characters outside Latin-1") from None
    if b"\x00" in raw:
        raise EncodeError(f"{name}: contains NUL")
    if max_len and len(raw) + 1 > max_len:
        raise EncodeError(f"{name}: longer than {max_len - 1} characters")
    return raw + b"\x00"


def _tlv_bytes(tlv: Tlv) -> bytes:
    spec = TLV_BY_TAG.get(tlv.tag)
    value = tlv.value
    if spec is not None and type(value) is (str if spec.kind is Kind.CSTRING else int):
        # The usual well-typed value of a known tag; anything odd takes the checked path below.
        try:
            if type(value) is str:
                text = value.encode("latin-1")
                if b"\x00" not in text and len(text) < 0xFFFF:
                    return _TLV_HEADER.pack(tlv.tag, len(text) + 1) + text + b"\x00"
            elif spec.kind in INT_SIZES:
                size = INT_SIZES[spec.kind]
                raw = value.to_bytes(size, "big")  # type: ignore[union-attr]
                return _TLV_HEADER.pack(tlv.tag, size) + raw
        except (UnicodeEncodeError, OverflowError):
            pass
    where = f"TLV 0x{tlv.tag:04X}"
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str) and spec is not None and spec.kind is Kind.CSTRING:
        raw = _cstring_bytes(where, value, 0)
    elif isinstance(value, int) and spec is not None and spec.kind in INT_SIZES:
        buf = bytearray()
        _write_int(buf, where, INT_SIZES[spec.kind], value)
        raw = bytes(buf)
    else:
        raise EncodeError(f"{where}: value {value!r} does not fit its tag; pass bytes")
    if not 0 <= tlv.tag <= 0xFFFF or len(raw) > 0xFFFF:
        raise EncodeError(f"{where}: tag or length out of range")
    return _TLV_HEADER.pack(tlv.tag, len(raw)) + raw


def tlv_value_octets(tlv: Tlv) -> bytes:
    """The value octets of a TLV as `encode` writes them (a typed value in its wire form)."""
    return _tlv_bytes(tlv)[_TLV_HEADER.size :]


def encode(pdu: Pdu) -> bytes:
    """Encode a PDU; missing body fields are written as zero/empty. Raises `EncodeError`.

    A compiled encoder (`compiled.py`) writes well-typed values; anything it declines is encoded
    by walking the table, which gives the same octets or the precise error.
    """
    command = COMMANDS_BY_NAME.get(pdu.command, 0)
    fast = ENCODERS.get(command)
    if fast is not None:
        fields = pdu.fields
        try:
            body = fast(fields) if fields or not command & RESPONSE_BIT or pdu.tlvs else b""
            if pdu.tlvs:
                body += b"".join(_tlv_bytes(tlv) for tlv in pdu.tlvs)
            header = _HEADER.pack(HEADER_LENGTH + len(body), command, pdu.status, pdu.sequence)
        except (Fallback, ValueError, TypeError, AttributeError, struct.error):
            return encode_by_table(pdu)
        if type(pdu.status) is not bool and type(pdu.sequence) is not bool:
            return header + body
    return encode_by_table(pdu)


def encode_by_table(pdu: Pdu) -> bytes:
    """`encode` by walking the field table, field by field: the reference the fast path obeys."""
    command = COMMANDS_BY_NAME.get(pdu.command)
    if command is None:
        raise EncodeError(f"unknown command {pdu.command!r}")
    body = bytearray()
    if pdu.fields or not is_response(command) or pdu.tlvs:
        _write_fields(body, BODIES[command], pdu.fields)
    for tlv in pdu.tlvs:
        body += _tlv_bytes(tlv)
    header = bytearray()
    _write_int(header, "command_length", 4, HEADER_LENGTH + len(body))
    header += command.to_bytes(4, "big")
    _write_int(header, "command_status", 4, pdu.status)
    _write_int(header, "sequence", 4, pdu.sequence)
    return bytes(header + body)


# --- streaming --------------------------------------------------------------------------------


class Framer:
    """Cuts a byte stream into PDUs. After a `FramingError` it is broken and drops all input."""

    def __init__(self, max_length: int = DEFAULT_MAX_PDU_LENGTH):
        self.max_length = max_length
        self.broken = False
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Pdu | DecodeError]:
        out: list[Pdu | DecodeError] = []
        if self.broken:
            return out
        if not self._buffer and len(data) >= HEADER_LENGTH:
            # The common case of an edge that frames by itself: exactly one whole PDU.
            length = int.from_bytes(data[:4], "big")
            if length == len(data) and length <= self.max_length:
                try:
                    out.append(decode(bytes(data)))
                except DecodeError as e:
                    out.append(e)
                return out
        self._buffer += data
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if length < HEADER_LENGTH:
                out.append(self._break(f"command_length {length} is shorter than a header"))
                break
            if len(self._buffer) < HEADER_LENGTH:
                break
            if length > self.max_length:
                _, command_id, _, sequence = decode_header(bytes(self._buffer[:HEADER_LENGTH]))
                out.append(
                    self._break(
                        f"command_length {length} exceeds {self.max_length}", command_id, sequence
                    )
                )
                break
            if len(self._buffer) < length:
                break
            chunk = bytes(self._buffer[:length])
            del self._buffer[:length]
            try:
                out.append(decode(chunk))
            except DecodeError as e:
                out.append(e)
        return out

    def _break(self, reason: str, command_id: int = 0, sequence: int = 0) -> FramingError:
        self.broken = True
        self._buffer.clear()
        return FramingError(Status.RINVCMDLEN, reason, command_id, sequence)
