"""Scheduler requirement expressions, e.g. `(CLUSTER_ID = 0) & !(PUBLIC_CLOUD = YES)`.

The subset of oned's `expr_bool.y` a gateway needs: `=`, `!=`, `>`, `<`, `@>` (contains),
`!`, `&`, `|` (left-associative, same precedence, as in oned) and parentheses; values are
numbers, bare words or double-quoted strings. An attribute the host does not have is false
for `=` and true for `!=`.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r'\s*(@>|!=|[=<>!&|()]|"[^"]*"|[A-Za-z0-9_./:*\-]+)')


class RequirementError(ValueError):
    pass


def matches(expression: str, attrs: dict[str, str]) -> bool:
    tokens = _tokenize(expression)
    parser = _Parser(tokens, attrs)
    value = parser.expr()
    if parser.pos != len(tokens):
        raise RequirementError(f"syntax error near {tokens[parser.pos]!r}")
    return value


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise RequirementError(f"syntax error at {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], attrs: dict[str, str]) -> None:
        self.tokens = tokens
        self.attrs = attrs
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise RequirementError("unexpected end of expression")
        self.pos += 1
        return token

    def expr(self) -> bool:
        value = self.term()
        while self.peek() in ("&", "|"):
            op = self.take()
            right = self.term()
            value = (value and right) if op == "&" else (value or right)
        return value

    def term(self) -> bool:
        token = self.take()
        if token == "!":
            return not self.term()
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise RequirementError("expecting ')'")
            return value
        op = self.take()
        if op not in ("=", "!=", ">", "<", "@>"):
            raise RequirementError(f"unexpected {op!r}")
        wanted = self.take().strip('"')
        have = self.attrs.get(token.strip('"').upper())
        if have is None:
            return op == "!="
        if op == "@>":
            return wanted in have.split(",")
        if op in (">", "<"):
            try:
                a, b = float(have), float(wanted)
            except ValueError:
                return False
            return a > b if op == ">" else a < b
        equal = _equal(have, wanted)
        return equal if op == "=" else not equal


def _equal(have: str, wanted: str) -> bool:
    try:
        return float(have) == float(wanted)
    except ValueError:
        return re.fullmatch(re.escape(wanted).replace(r"\*", ".*"), have) is not None
