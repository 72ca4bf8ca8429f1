"""A handler's result dict -> the EC2 response document, driven by the output shape.

What clients need (shared/reference/ec2-clients.md §3.2, §4), all derived from the model:

* root `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` (the trailing
  slash matters to libcloud), then `<requestId>`;
* element names are the output members' `locationName`s (`State` -> `instanceState`);
* lists are `<wrapper><item>..</item></wrapper>`: `item` unless the model names the list
  member otherwise (3 launch-template/spot lists use `groupId`/`SecurityGroupId`);
* top-level lists are always present (`<reservationSet/>`), because botocore leaves an
  absent wrapper out of the result and user code indexing it crashes; other None members
  are omitted;
* booleans `true`/`false`, timestamps `YYYY-MM-DDTHH:MM:SS.mmmZ` (JS v3 and libcloud reject
  other forms), blobs base64;
* operations without an output shape answer `<return>true</return>` (libcloud checks it).

A structure may also come already serialized (`structure_xml`, an `Xml`): its members are
written as they are. DescribeInstances keeps each instance's members that way between
requests (`instance_view.instance_xml`).

Why not an lxml tree: building one costs ~1 µs per element in `SubElement` alone, so a
DescribeInstances of 1000 instances (~64k elements) took ~90 ms; emitting text from
per-shape tables built once takes about a third of that. Text is escaped exactly as lxml
escapes it (the tests compare the two), and characters XML cannot carry are replaced.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from botocore.model import OperationModel, Shape, StructureShape

from ec2gw.protocol.model import NAMESPACE

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# How a value is written; see _Node.
_STRING, _SCALAR, _STRUCTURE, _LIST = range(4)


class _Node:
    """How to write one value of a shape under a given element name, built once.

    `sub` depends on `kind`: a formatter for _SCALAR, the member table for _STRUCTURE,
    the item's _Node for _LIST.
    """

    __slots__ = ("open", "close", "empty", "kind", "sub")

    def __init__(self, tag: str, kind: int, sub: Any) -> None:
        self.open = f"<{tag}>"
        self.close = f"</{tag}>"
        self.empty = f"<{tag}/>"
        self.kind = kind
        self.sub = sub


# (boto3 member name, node) of each member of a structure, in model order.
_MemberTable = list[tuple[str, _Node]]
_TABLES: dict[str, _MemberTable] = {}  # by shape name; only touched under _BUILDING
_COMPLETE: dict[str, _MemberTable] = {}  # see _complete_table; complete tables only
_BUILDING = threading.Lock()

# Characters XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NEEDS_ESCAPE = re.compile("[&<>\r]|" + _NOT_XML.pattern)


class Xml(str):
    """The members of one structure, serialized by `structure_xml`: written verbatim."""

    __slots__ = ()


def structure_xml(shape: StructureShape, value: dict) -> Xml:
    """The members of `value` (a `shape` structure) as they appear inside its element."""
    out: list[str] = []
    _write_members(out.append, _complete_table(shape.name, shape), value)
    return Xml("".join(out))


def serialize_response(op: OperationModel, result: dict | None, request_id: str) -> bytes:
    """The success document of `op` for `result` (keyed by boto3 member names)."""
    result = result or {}
    name = op.name + "Response"
    out = [XML_DECLARATION, f'<{name} xmlns="{NAMESPACE}"><requestId>', _escape(request_id)]
    out.append("</requestId>")
    shape = op.output_shape
    if shape is None:
        out.append("<return>true</return>")
    else:
        if "Return" in shape.members and result.get("Return") is None:
            result = {**result, "Return": True}  # success is the answer to "did it work?"
        table = _complete_table(f"{op.name}:output", shape)
        _write_members(out.append, table, result, top_level=True)
    out.append(f"</{name}>")
    return "".join(out).encode("utf-8")


def serialize_error(code: str, message: str, request_id: str) -> bytes:
    """EC2's error envelope (no namespace, `RequestID` with a capital D, like real EC2)."""
    return (
        f"{XML_DECLARATION}<Response><Errors><Error><Code>{_escape(code)}</Code>"
        f"<Message>{_escape(message)}</Message></Error></Errors>"
        f"<RequestID>{_escape(request_id)}</RequestID></Response>"
    ).encode()


def _escape(text: str) -> str:
    """Element text as lxml writes it (`&amp; &lt; &gt; &#13;`), never an invalid document."""
    if (  # the common case, plain ASCII: four C-level checks beat one regex search
        text.isascii()
        and text.isprintable()
        and "&" not in text
        and "<" not in text
        and ">" not in text
    ):
        return text
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    )


def _write_members(
    append: Callable[[str], None], table: _MemberTable, value: dict, top_level: bool = False
) -> None:
    get = value.get
    for name, node in table:
        member = get(name)
        if member is None:
            if top_level and node.kind == _LIST:
                append(node.empty)
        elif node.kind == _STRING:  # inlined: by far the most frequent
            append(node.open)
            append(_escape(member if type(member) is str else _to_string(member)))
            append(node.close)
        else:
            _write(append, node, member)


def _write(append: Callable[[str], None], node: _Node, value: Any) -> None:
    kind = node.kind
    if kind == _STRING:
        append(node.open + _escape(value if type(value) is str else _to_string(value)) + node.close)
    elif kind == _SCALAR:
        append(node.open + node.sub(value) + node.close)
    elif kind == _STRUCTURE:
        append(node.open)
        if type(value) is Xml:
            append(value)
        else:
            _write_members(append, node.sub, value)
        append(node.close)
    elif not value:
        append(node.empty)
    else:
        append(node.open)
        item = node.sub
        for element in value:
            if element is not None:
                _write(append, item, element)
        append(node.close)


def _complete_table(key: str, shape: StructureShape) -> _MemberTable:
    """The member table of a structure written from outside (an operation's output, a
    `structure_xml`), built completely before it is shared."""
    table = _COMPLETE.get(key)
    if table is None:
        with _BUILDING:
            table = _COMPLETE[key] = _member_table(shape)
    return table


def _member_table(shape: StructureShape) -> _MemberTable:
    """The members of a structure with their nodes, built once per shape name."""
    table = _TABLES.get(shape.name)
    if table is None:
        table = _TABLES[shape.name] = []  # registered first: safe for recursive shapes
        for name, member in shape.members.items():
            table.append((name, _node(member.serialization.get("name", name), member)))
    return table


def _node(tag: str, shape: Shape) -> _Node:
    kind = shape.type_name
    if kind == "string":
        return _Node(tag, _STRING, None)
    if kind == "structure":
        return _Node(tag, _STRUCTURE, _member_table(shape))
    if kind == "list":
        item_tag = shape.member.serialization.get("name", "item")
        return _Node(tag, _LIST, _node(item_tag, shape.member))
    formatter = _FORMATTERS.get(kind)
    if formatter is None:
        raise TypeError(f"no XML form for shape {shape.name} of type {kind}")
    return _Node(tag, _SCALAR, formatter)


def _to_string(value: Any) -> str:
    """A non-str value in a string slot. Dates matter: the model types some as strings
    (`Image.CreationDate`, `DeprecationTime`, ...) and EC2 sends them in RFC 3339 form."""
    if isinstance(value, datetime):
        return _format_timestamp(value)
    if isinstance(value, bool):
        return _format_bool(value)
    return str(value)


def _format_bool(value: Any) -> str:
    return "true" if value else "false"


def _format_int(value: Any) -> str:
    return str(int(value))  # raises (-> InternalError) rather than emit an empty integer


def _format_float(value: Any) -> str:
    return repr(float(value))


def _format_timestamp(value: Any) -> str:
    """RFC 3339 in UTC with milliseconds, from a datetime (naive = UTC) or epoch seconds."""
    if isinstance(value, datetime):
        return _format_datetime(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _format_datetime(datetime.fromtimestamp(value, UTC))
    if isinstance(value, str):
        return _format_datetime(datetime.fromisoformat(value))
    raise TypeError(f"not a timestamp: {value!r}")


@lru_cache(maxsize=4096)
def _format_datetime(value: datetime) -> str:
    """Cached: an instance carries its launch time four times, a pool the same few times."""
    moment = value.astimezone(UTC) if value.tzinfo is not None else value
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}."
        f"{moment.microsecond // 1000:03d}Z"
    )


def _format_blob(value: Any) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode("ascii")


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "boolean": _format_bool,
    "integer": _format_int,
    "long": _format_int,
    "float": _format_float,
    "double": _format_float,
    "timestamp": _format_timestamp,
    "blob": _format_blob,
}
