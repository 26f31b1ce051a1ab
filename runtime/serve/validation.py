"""Strict checks of JSON request bodies: known fields only, exact JSON types, bounds; errors name the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from makemore.data import first_line
from makemore.data.reader import lone_surrogate

INTEGER, NUMBER, STRING, BOOLEAN, STRINGS = "an integer", "a number", "a string", "true or false", "a list of strings"


class RequestError(Exception):
    """A request the server refuses: HTTP status, one-line message and the field at fault (if any)."""

    def __init__(self, status: int, message: str, field: str | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.close = close  # answer with Connection: close (the body was not read, or not all of it)

    def to_json(self) -> dict[str, Any]:
        return error_json(self.message, self.field)


def encodable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) written as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_json(message: str, field: str | None) -> dict[str, Any]:
    """The JSON of an error answer; its text always encodes (a field name may hold a lone surrogate)."""
    return {"error": encodable(message), "field": None if field is None else encodable(field)}


@dataclass(frozen=True)
class Field:
    """One field of a request body: its JSON type, default, and inclusive bounds (on the value or list length)."""

    kind: str
    default: Any = None
    nullable: bool = False
    required: bool = False
    low: int | None = None
    high: int | None = None
    item_high: int | None = None  # for a list of strings: the longest string


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


class DuplicateKey(Exception):
    """A JSON object that names a key twice (`{"n": 0, "n": 1}`): which value was meant is not known."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise DuplicateKey(key)
        value[key] = item
    return value


def parse_json(body: bytes) -> Any:
    """Decode a body as strict JSON (no NaN or Infinity); an empty body is {}. Text holding a lone surrogate
    (a \\uD800-\\uDFFF escape without its pair: no character) is a 422 naming the field."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except DuplicateKey as err:
        raise RequestError(422, f"the field {err.key!r:.60} is given twice", err.key) from None
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise RequestError(400, f"the body is not valid JSON: {first_line(err, 160)}") from None
    if b"\\u" in body:  # raw surrogates are not UTF-8: only an escape can make one
        refuse_surrogates(value)
    return value


def refuse_surrogates(value: Any) -> None:
    """422 naming the field (`key`, or `key[i]` for an item of a list) whose text holds a lone surrogate."""
    found = lone_surrogate(value)
    if found is None:
        return
    if found.in_key:
        message = f"the field name {found.text!r:.60} holds a lone surrogate: not a character"
        raise RequestError(422, message, found.field)
    where = f"{found.field} holds" if found.field is not None else "the body holds"
    raise RequestError(422, f"{where} a lone surrogate {found.text!r:.60}: not a character", found.field)


def has_kind(value: Any, kind: str) -> bool:
    """Whether a decoded JSON value is of `kind` (booleans are not numbers here)."""
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == STRING:
        return isinstance(value, str)
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == STRINGS:
        return isinstance(value, list)
    raise ValueError(f"unknown field kind {kind!r}")


def check_field(name: str, spec: Field, value: Any) -> Any:
    """The value if it fits `spec`; raise a 422 RequestError naming the field otherwise."""
    if value is None and spec.nullable:
        return None
    if not has_kind(value, spec.kind):
        raise RequestError(422, f"{name} must be {spec.kind}{' or null' if spec.nullable else ''}", name)
    if spec.kind == STRINGS:
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise RequestError(422, f"{name}[{i}] must be a string", f"{name}[{i}]")
            if spec.item_high is not None and len(item) > spec.item_high:
                message = f"{name}[{i}] must have at most {spec.item_high} characters, got {len(item)}"
                raise RequestError(422, message, f"{name}[{i}]")
    size = len(value) if spec.kind == STRINGS else value
    what = f"{name} must have" if spec.kind == STRINGS else f"{name} must be"
    unit = " items" if spec.kind == STRINGS else ""
    if spec.low is not None and size < spec.low:
        raise RequestError(422, f"{what} at least {spec.low}{unit}, got {size}", name)
    if spec.high is not None and size > spec.high:
        raise RequestError(422, f"{what} at most {spec.high}{unit}, got {size}", name)
    return value


def check_body(body: Any, fields: dict[str, Field], also_known: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every field of `fields`, from a decoded JSON object or its default; fields neither in `fields` nor in
    `also_known` (checked elsewhere) are refused."""
    if not isinstance(body, dict):
        raise RequestError(422, "the body must be a JSON object")
    known = [*fields, *also_known]
    unknown = [name for name in body if name not in known]
    if unknown:
        raise RequestError(422, f"unknown field {unknown[0]!r:.60}; known: {', '.join(known)}", unknown[0][:60])
    values = {}
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                raise RequestError(422, f"{name} is required", name)
            values[name] = spec.default
        else:
            values[name] = check_field(name, spec, body[name])
    return values
