"""EC2 `Filter.N.Name` / `Filter.N.Value.M` matching, shared by every Describe action.

Each action declares the filter names it supports as a mapping from name to a function
returning the resource's value(s) for it; `tag:<key>`, `tag-key` and `tag-value` come for
free from the resource's tags. Values may use `*` and `?` wildcards (`\\` escapes them).
A resource matches when every filter matches (AND) and, within a filter, any value
matches (OR), as in EC2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from ec2gw.protocol.errors import EC2Error

T = TypeVar("T")
Value = str | int | float | bool | None
Extractor = Callable[[Any], Value | Iterable[Value]]
Predicate = Callable[[Any], bool]


@lru_cache(maxsize=4096)
def _pattern(value: str) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out), re.DOTALL)


def _as_text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _values(raw: Value | Iterable[Value]) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str | int | float | bool):
        return [_as_text(raw)]
    return [_as_text(v) for v in raw if v is not None]


def matches_any(patterns: list[str], values: list[str]) -> bool:
    return any(_pattern(p).fullmatch(v) for p in patterns for v in values)


def is_tag_filter(name: str) -> bool:
    """`tag:<key>`, `tag-key`, `tag-value`: answered from a resource's tags alone."""
    return name.startswith("tag:") or name in ("tag-key", "tag-value")


def compile_filters(
    filters: list[Mapping[str, Any]] | None,
    known: Mapping[str, Extractor],
    tags: Callable[[Any], Mapping[str, str]] | None = None,
) -> Predicate:
    """Turn the parsed `Filters` parameter into one predicate over resources.

    Unknown filter names are rejected like EC2 does (`InvalidParameterValue`).
    """
    checks: list[Predicate] = []
    for spec in filters or []:
        name = spec.get("Name")
        wanted = [str(v) for v in spec.get("Values") or []]
        if not name:
            raise EC2Error("InvalidParameterValue", "The filter 'null' is invalid")
        if not wanted:
            raise EC2Error(
                "InvalidParameterValue", f"The filter '{name}' must have at least one value"
            )
        checks.append(_check(name, wanted, known, tags))
    return lambda resource: all(check(resource) for check in checks)


def _check(
    name: str,
    wanted: list[str],
    known: Mapping[str, Extractor],
    tags: Callable[[Any], Mapping[str, str]] | None,
) -> Predicate:
    if tags is not None:
        if name.startswith("tag:"):
            key = name[4:]
            return lambda r: key in tags(r) and matches_any(wanted, [tags(r)[key]])
        if name == "tag-key":
            return lambda r: matches_any(wanted, list(tags(r)))
        if name == "tag-value":
            return lambda r: matches_any(wanted, list(tags(r).values()))
    extract = known.get(name)
    if extract is None:
        raise EC2Error("InvalidParameterValue", f"The filter '{name}' is invalid")
    return lambda r: matches_any(wanted, _values(extract(r)))


def apply(
    resources: Iterable[T],
    filters: list[Mapping[str, Any]] | None,
    known: Mapping[str, Extractor],
    tags: Callable[[T], Mapping[str, str]] | None = None,
) -> list[T]:
    keep = compile_filters(filters, known, tags)
    return [r for r in resources if keep(r)]
