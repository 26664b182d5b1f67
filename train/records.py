"""Frozen dataclasses ("records") to JSON values and back, as the model card is stored.

A record with a `keys` field remembers which of its fields its JSON object lists, in what order:
read, it records the object's keys; written, it lists those (a None among them as null). Any
other record lists every field. So a record read and written again is the same JSON.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

R = TypeVar("R")


class RecordError(ValueError):
    """JSON that is not the record it should be; the message names where."""


def from_json(record: type[R], content: Any, where: str) -> R:
    """`content` (parsed JSON) as a `record`; RecordError names what does not fit."""
    value = _decode(record, content, where)
    assert isinstance(value, record)
    return value


def to_json(value: Any) -> Any:
    """A record (and what it holds) as JSON values; a record with `keys` lists those."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = getattr(value, "keys", ()) or [
            f.name for f in dataclasses.fields(value) if f.name != "keys"
        ]
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


def _decode(hint: Any, value: Any, where: str) -> Any:
    """`value` read from JSON as the type `hint` says: records (and optional ones, and maps of
    them) built field by field; anything else as JSON gave it."""
    if value is None:
        return None
    if get_origin(hint) in (Union, types.UnionType):
        (inner,) = (arg for arg in get_args(hint) if arg is not type(None))
        return _decode(inner, value, where)
    if get_origin(hint) is dict and dataclasses.is_dataclass(get_args(hint)[1]):
        return {
            key: _decode(get_args(hint)[1], item, f"{where}.{key}") for key, item in value.items()
        }
    if not (dataclasses.is_dataclass(hint) and isinstance(hint, type)):
        return value
    if not isinstance(value, dict):
        raise RecordError(f"{where} is a JSON {type(value).__name__}, not an object")
    hints = get_type_hints(hint)
    names = {f.name for f in dataclasses.fields(hint)} - {"keys"}
    if unknown := [key for key in value if key not in names]:
        raise RecordError(f"{where} has fields the record does not: {', '.join(unknown)}")
    arguments = {key: _decode(hints[key], item, f"{where}.{key}") for key, item in value.items()}
    if "keys" in hints:
        arguments["keys"] = tuple(value)
    try:
        return hint(**arguments)
    except TypeError as error:  # a required field missing
        raise RecordError(f"{where}: {error}") from None
