"""The course-links file: which Canvas courses mirror into which Credentials groups.

A link is ``{course_id, issuer_id, group_id, rules: [...]}`` with each rule in the form
:func:`sync_core.rules.rule_to_dict` writes. The file is JSON (a list of links, or
``{"links": [...]}``) or TOML (``[[links]]`` tables). Every value is checked here, with the
file, link and rule it came from in the message, because the engine trusts its events: a
score bar given as the string ``"80"`` would otherwise fail only mid-sync, far from its cause.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from sync_core.events import CourseLinked
from sync_core.rules import RULE_TYPES, AwardRule, rule_from_dict, rule_to_dict


class LinksError(ValueError):
    """The links file cannot be used; the message names the file and the bad entry."""


def load_links(path: Path) -> list[CourseLinked]:
    """Read and check a links file; raises :class:`LinksError` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinksError(f"{path}: cannot read the links file: {exc.strerror}") from exc
    try:
        data: object = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise LinksError(f"{path}: not valid {kind}: {exc}") from exc
    entries = data.get("links") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise LinksError(f'{path}: expected a list of links (or a "links" list)')
    links: list[CourseLinked] = []
    for index, entry in enumerate(entries):
        where = f"{path}: link {index}"
        link = _link(entry, where)
        if any(seen.course_id == link.course_id for seen in links):
            raise LinksError(f"{where}: course {link.course_id} is linked twice")
        links.append(link)
    return links


def _link(entry: object, where: str) -> CourseLinked:
    if not isinstance(entry, dict):
        raise LinksError(f"{where}: expected an object with course_id, issuer_id, group_id, rules")
    unknown = sorted(set(entry) - {"course_id", "issuer_id", "group_id", "rules"})
    if unknown:
        raise LinksError(f"{where}: unknown keys {unknown}")
    course_id = entry.get("course_id")
    if not _is_int(course_id) or course_id <= 0:
        raise LinksError(f"{where}: course_id must be a positive integer, got {course_id!r}")
    issuer_id = _text(entry, "issuer_id", where)
    group_id = _text(entry, "group_id", where)
    rules = entry.get("rules")
    if not isinstance(rules, list) or not rules:
        raise LinksError(f"{where}: rules must be a non-empty list")
    parsed = tuple(_rule(rule, f"{where}, rule {i}") for i, rule in enumerate(rules))
    return CourseLinked(course_id, issuer_id, group_id, parsed)


def _text(entry: dict[str, object], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise LinksError(f"{where}: {name} must be a non-empty string, got {value!r}")
    return value


def _rule(data: object, where: str) -> AwardRule:
    if not isinstance(data, dict):
        raise LinksError(f"{where}: expected an object with a type")
    kind = RULE_TYPES.get(str(data.get("type")))
    if kind is None:
        raise LinksError(f"{where}: unknown type {data.get('type')!r}; one of {sorted(RULE_TYPES)}")
    hints = typing.get_type_hints(kind)
    allowed = {f.name for f in fields(kind)}
    unknown = sorted(set(data) - allowed - {"type"})
    if unknown:
        raise LinksError(f"{where}: unknown keys {unknown} for {data['type']}")
    missing = sorted(f.name for f in fields(kind) if f.default is MISSING and f.name not in data)
    if missing:
        raise LinksError(f"{where}: missing keys {missing} for {data['type']}")
    values = {
        name: _typed(data[name], hints[name], f"{where}: {name}") for name in allowed & set(data)
    }
    try:
        return rule_from_dict({"type": data["type"], **values})
    except (TypeError, ValueError) as exc:
        raise LinksError(f"{where}: {exc}") from exc


def _typed(value: object, hint: object, where: str) -> object:
    """``value`` checked against a rule field's annotation (str, int, float, bool, or one of
    those or None); integers are accepted for floats and turned into floats."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    if str in options and isinstance(value, str) and value:
        return value
    if bool in options and isinstance(value, bool):
        return value
    if int in options and _is_int(value):
        return value
    if float in options and _is_number(value) and math.isfinite(value):
        return float(value)
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise LinksError(f"{where} must be {names}, got {value!r}")


def _is_int(value: object) -> typing.TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> typing.TypeGuard[int | float]:
    return isinstance(value, float) or _is_int(value)


def links_to_json(links: list[CourseLinked]) -> str:
    """The links file for ``links``: the inverse of :func:`load_links` for JSON."""
    return json.dumps(
        [
            {
                "course_id": link.course_id,
                "issuer_id": link.issuer_id,
                "group_id": link.group_id,
                "rules": [rule_to_dict(r) for r in link.rules],
            }
            for link in links
        ],
        indent=2,
    )
