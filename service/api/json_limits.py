"""Limits on the JSON a request may send: nesting depth, string and array sizes, and text that
UTF-8 can store. Checked after parsing and before any model sees the value, so that what a
request carries can always be recorded in the log and read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service import errors
from service import settings as service_settings


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Settings DTMA_MAX_JSON_DEPTH, _STRING (characters, in a value or a key) and _ARRAY
    (items in an array, or members of an object)."""

    max_depth: int
    max_string: int
    max_array: int

    @classmethod
    def of(cls, settings: service_settings.Settings) -> JsonLimits:
        return cls(settings.max_json_depth, settings.max_json_string, settings.max_json_array)


def check(value: Any, limits: JsonLimits) -> None:
    """Raise ValidationFailedError naming the first place where `value` goes over a limit."""
    pending: list[tuple[Any, str, int]] = [(value, "", 1)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            _string(item, path, limits)
        elif isinstance(item, dict | list):
            _container(item, path, depth, limits)
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _string(key, path, limits)
                pending.append((child, _join(path, key), depth + 1))


def nesting_error(limits: JsonLimits) -> errors.ValidationFailedError:
    """For a body so deep that the parser itself gave up."""
    return _refused("", f"nests deeper than {limits.max_depth} levels")


def _container(item: dict[str, Any] | list[Any], path: str, depth: int, limits: JsonLimits) -> None:
    if depth > limits.max_depth:
        raise _refused(path, f"nests deeper than {limits.max_depth} levels")
    if len(item) > limits.max_array:
        noun = "members" if isinstance(item, dict) else "items"
        raise _refused(path, f"has more than {limits.max_array} {noun}")


def _string(text: str, path: str, limits: JsonLimits) -> None:
    if len(text) > limits.max_string:
        raise _refused(path, f"is longer than {limits.max_string} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _refused(path, "holds a lone surrogate (\\ud800-\\udfff), not text") from None


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _refused(path: str, message: str) -> errors.ValidationFailedError:
    where = path or "the body"
    return errors.ValidationFailedError(
        f"{where} {message}", details=[{"field": path, "message": message}]
    )
