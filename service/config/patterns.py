"""A template's regular expressions run by RE2, in time linear in the input: Python's `re`,
which `jsonschema` uses, backtracks, and `^(a+)+$` against 30 characters stalls the service."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import re2
from jsonschema import ValidationError, validators
from jsonschema.protocols import Validator

# Values that are data, not schemas: a {"pattern": ...} inside them is no regular expression.
DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
UNEVALUATED = "unevaluatedProperties beside patternProperties is not supported"
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's 422, not a line on stderr


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any | None:
    """The pattern for RE2, or None when RE2 cannot run it (backreferences, lookaround)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error:
        return None


def unsupported(schema: Any) -> list[tuple[tuple[str, ...], str]]:
    """(where, why) for each part of the schema this service will not run: a `pattern` or a
    `patternProperties` key RE2 cannot run, `unevaluatedProperties` beside `patternProperties`."""
    found = [
        (where, f"RE2 cannot run {p!r} (no backreferences or lookaround)")
        for where, p in _patterns(schema, ())
        if compiled(p) is None
    ]
    if _has(schema, "patternProperties") and _has(schema, "unevaluatedProperties"):
        found.append((("unevaluatedProperties",), UNEVALUATED))
    return found


def _patterns(schema: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _patterns(item, (*path, str(index)))
        return
    if not isinstance(schema, Mapping):
        return
    if isinstance(pattern := schema.get("pattern"), str):
        yield (*path, "pattern"), pattern
    if isinstance(keyed := schema.get("patternProperties"), Mapping):
        yield from (((*path, "patternProperties", key), key) for key in keyed)
    for key, value in schema.items():
        if key not in DATA_KEYWORDS:
            yield from _patterns(value, (*path, key))


def _has(schema: Any, keyword: str) -> bool:
    if isinstance(schema, list):
        return any(_has(item, keyword) for item in schema)
    if not isinstance(schema, Mapping):
        return False
    return keyword in schema or any(
        _has(value, keyword) for key, value in schema.items() if key not in DATA_KEYWORDS
    )


def _search(pattern: str, text: str) -> bool:
    regex = compiled(pattern)
    if regex is None:  # a template recorded before patterns were checked: it matches nothing
        return False
    return regex.search(text) is not None


def _pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, keyed: Mapping[str, Any], instance: Any, _schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in keyed.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in known and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"  # as jsonschema words it
        yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _unevaluated_properties(base: type[Validator]) -> Any:
    """`unevaluatedProperties` as `base` has it, unless the schema has `patternProperties`
    anywhere: finding what they evaluated would take Python's `re`."""
    original = base.VALIDATORS["unevaluatedProperties"]

    def checked(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if _has(validator.schema, "patternProperties"):
            yield ValidationError(UNEVALUATED)
            return
        yield from original(validator, value, instance, schema)

    return checked


@functools.cache
def linear(base: type[Validator]) -> type[Validator]:
    """`base` with every keyword that runs a regular expression running it by RE2."""
    keywords = {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    }
    if "unevaluatedProperties" in base.VALIDATORS:
        keywords["unevaluatedProperties"] = _unevaluated_properties(base)
    extend: Any = validators.extend  # untyped in types-jsonschema
    extended: type[Validator] = extend(base, keywords)
    return extended
