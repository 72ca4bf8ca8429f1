"""OpenNebula templates: parsing (text syntax and `<TEMPLATE>` XML) and rendering.

A template is an ordered list of attributes. A single attribute has a string value, a
vector attribute a dict of strings. oned keeps attributes in a sorted multimap and vector
members in a sorted map, so rendering sorts by name (stable for repeated names, e.g.
several DISKs) and every value is wrapped in CDATA — which is why `]]>` is rejected on
input (`src/parsers/template_parser.l`, `Template::to_xml`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator

Value = str | dict[str, str]
Attr = tuple[str, Value]


class TemplateError(ValueError):
    """A template string oned would refuse to parse."""


_NAME = re.compile(r"[A-Za-z0-9_]+")
_UNQUOTED = re.compile(r"[^=#\s,\[\]]+")
_QUOTED_ONED = re.compile(r'"((?:[^"]|\\")*?)(?<!\\)"', re.S)


class Template:
    """An ordered multimap of OpenNebula attributes.

    In replace mode (oned's image and user templates, `Template(true, ...)`) setting an
    attribute first erases every attribute of that name, so one per name is kept: the last.
    """

    def __init__(self, attrs: Iterable[Attr] = (), replace_mode: bool = False) -> None:
        self.replace_mode = replace_mode
        self.attrs: list[Attr] = []
        for n, v in attrs:
            self.set(n, v)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, replace_mode: bool = False) -> Template:
        """Parse either syntax, as `Template::parse_str_or_xml` does (XML iff first char `<`)."""
        parsed = cls.parse_xml(text) if text.startswith("<") else cls.parse_text(text)
        return cls(parsed.attrs, replace_mode) if replace_mode else parsed

    @classmethod
    def parse_text(cls, text: str) -> Template:
        return cls(_TextParser(text).attributes())

    @classmethod
    def parse_xml(cls, text: str) -> Template:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as err:
            raise TemplateError(f"Parse error: {err}") from None
        attrs: list[Attr] = []
        for child in root:
            if len(child):
                attrs.append((child.tag, {g.tag.upper(): g.text or "" for g in child}))
            else:
                attrs.append((child.tag, child.text or ""))
        for _, value in attrs:
            for v in value.values() if isinstance(value, dict) else [value]:
                if "]]>" in v:
                    raise TemplateError("Parse error: value contains ']]>'")
        return cls(attrs)

    def copy(self) -> Template:
        return Template(self.attrs, self.replace_mode)

    # --- access -------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Attr]:
        return iter(self.attrs)

    def __len__(self) -> int:
        return len(self.attrs)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first single value called `name`."""
        name = name.upper()
        for n, v in self.attrs:
            if n == name and isinstance(v, str):
                return v
        return default

    def vector(self, name: str) -> dict[str, str] | None:
        for v in self.vectors(name):
            return v
        return None

    def vectors(self, name: str) -> list[dict[str, str]]:
        name = name.upper()
        return [v for n, v in self.attrs if n == name and isinstance(v, dict)]

    def has(self, name: str) -> bool:
        name = name.upper()
        return any(n == name for n, _ in self.attrs)

    def names(self) -> set[str]:
        return {n for n, _ in self.attrs}

    # --- mutation -----------------------------------------------------------------------

    def add(self, name: str, value: Value) -> None:
        self.attrs.append((name.upper(), _copy(value)))

    def set(self, name: str, value: Value) -> None:
        """`Template::set`: add, after erasing the same name in replace mode."""
        if self.replace_mode:
            self.erase(name)
        self.add(name, value)

    def replace(self, name: str, value: Value) -> None:
        """Set `name` to a single occurrence of `value`."""
        self.erase(name)
        self.add(name, value)

    def erase(self, name: str) -> list[Value]:
        name = name.upper()
        removed = [v for n, v in self.attrs if n == name]
        self.attrs = [(n, v) for n, v in self.attrs if n != name]
        return removed

    def merge(self, other: Template) -> None:
        """`Template::merge` (update append=1): every name in `other` is erased, then its
        attributes are set; a vector with no members only erases."""
        for name in other.names():
            self.erase(name)
        for name, value in other.attrs:
            if not (isinstance(value, dict) and not value):
                self.set(name, value)

    # --- output -------------------------------------------------------------------------

    def to_xml(self, root: str = "TEMPLATE") -> str:
        return f"<{root}>{self.body_xml()}</{root}>"

    def body_xml(self) -> str:
        return "".join(attr_xml(n, v) for n, v in sorted(self.attrs, key=lambda a: a[0]))

    def to_text(self) -> str:
        lines = []
        for name, value in self.attrs:
            if isinstance(value, dict):
                inner = ",\n  ".join(f'{k}="{_escape(v)}"' for k, v in value.items())
                lines.append(f"{name}=[\n  {inner} ]")
            else:
                lines.append(f'{name}="{_escape(value)}"')
        return "\n".join(lines)

    def to_json(self) -> list:
        return [[n, v] for n, v in self.attrs]

    @classmethod
    def from_json(cls, data: list, replace_mode: bool = False) -> Template:
        return cls(((n, v) for n, v in data), replace_mode)


def attr_xml(name: str, value: Value) -> str:
    """One attribute as oned writes it: CDATA leaves, vector members sorted."""
    if isinstance(value, dict):
        inner = "".join(cdata(k, value[k]) for k in sorted(value))
        return f"<{name}>{inner}</{name}>"
    return cdata(name, value)


def cdata(tag: str, value: object) -> str:
    return f"<{tag}><![CDATA[{value}]]></{tag}>"


def _copy(value: Value) -> Value:
    return dict(value) if isinstance(value, dict) else str(value)


def _escape(value: str) -> str:
    return value.replace('"', '\\"')


class _TextParser:
    """A hand-written equivalent of oned's flex/bison template grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> TemplateError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1)
        return TemplateError(f"Parse error: syntax error, {what} at line {line}, column {column}")

    def skip(self, newlines: bool = True) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
            elif c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            else:
                break

    def name(self) -> str:
        m = _NAME.match(self.text, self.pos)
        if not m:
            raise self.error("unexpected character, expecting VARIABLE")
        self.pos = m.end()
        return m.group(0).upper()

    def expect(self, char: str) -> None:
        if not self.text.startswith(char, self.pos):
            raise self.error(f"expecting '{char}'")
        self.pos += 1

    def value(self) -> str:
        """A quoted (may span lines, `\\"` unescaped) or an unquoted string."""
        rest_of_line = self.text[self.pos :].split("\n", 1)[0]
        quoted = _QUOTED_ONED.match(self.text, self.pos) if rest_of_line[:1] == '"' else None
        if quoted:
            self.pos = quoted.end()
            raw = quoted.group(1)
        else:
            # an unterminated quote is no error: oned's lexer takes `"1` as a bare word,
            # quote included (template_parser.l, rule <VALUE>{STRING})
            m = _UNQUOTED.match(self.text, self.pos)
            if not m:
                return ""
            self.pos = m.end()
            raw = m.group(0)
        if "]]>" in raw or "]]>" in rest_of_line:
            raise self.error("value contains ']]>'")
        return raw.replace('\\"', '"')

    def attributes(self) -> list[Attr]:
        attrs: list[Attr] = []
        while True:
            self.skip()
            if self.pos >= len(self.text):
                return attrs
            name = self.name()
            self.skip(newlines=False)
            self.expect("=")
            self.skip(newlines=False)
            if self.text.startswith("[", self.pos):
                self.pos += 1
                attrs.append((name, self.vector()))
            elif self.pos >= len(self.text) or self.text[self.pos] == "\n":
                attrs.append((name, ""))
            else:
                attrs.append((name, self.value()))

    def vector(self) -> dict[str, str]:
        members: dict[str, str] = {}
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return members
        while True:
            self.skip()
            key = self.name()
            self.skip(newlines=False)
            self.expect("=")
            self.skip(newlines=False)
            members.setdefault(key, self.value())
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("]", self.pos):
                self.pos += 1
                return members
            else:
                raise self.error("expecting ',' or ']'")
