"""XML-RPC encoding for OpenNebula calls, decoded with lxml.

`xmlrpc.client.loads` feeds character data to Python callbacks piece by piece; oned's
answers are large escaped XML documents inside a string, which makes it spend most of a
DescribeInstances in that loop. lxml decodes the whole reply in C.
"""

from __future__ import annotations

import base64
import xmlrpc.client
from typing import Any

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


class ReplyError(ValueError):
    """The reply is not a well-formed XML-RPC methodResponse."""


def encode_call(method: str, params: tuple[Any, ...]) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=False).encode()


def _value(node: etree._Element) -> Any:
    child = next(iter(node), None)
    if child is None:  # <value>text</value> is a string
        return node.text or ""
    tag, text = child.tag, child.text or ""
    if tag == "string":
        return text
    if tag in ("int", "i4", "i8"):
        return int(text)
    if tag == "boolean":
        return text.strip() == "1"
    if tag == "double":
        return float(text)
    if tag == "array":
        return [_value(v) for v in child.iterfind("data/value")]
    if tag == "struct":
        return {m.findtext("name"): _value(m.find("value")) for m in child.iterfind("member")}
    if tag == "nil":
        return None
    if tag == "base64":
        return base64.b64decode(text)
    if tag == "dateTime.iso8601":
        return text
    raise ReplyError(f"unknown XML-RPC type {tag}")


def decode_reply(body: bytes) -> Any:
    """The value of a methodResponse; raises `xmlrpc.client.Fault` for a fault."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as err:
        raise ReplyError(str(err)) from None
    if root.tag != "methodResponse":
        raise ReplyError("not a methodResponse")
    fault = root.find("fault/value")
    if fault is not None:
        detail = _value(fault)
        raise xmlrpc.client.Fault(detail.get("faultCode"), detail.get("faultString"))
    value = root.find("params/param/value")
    if value is None:
        raise ReplyError("methodResponse without a value")
    return _value(value)
