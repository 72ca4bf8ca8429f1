"""XML-RPC encoding for OpenNebula calls: the standard library's, with a faster reader.

oned's answers are large XML documents escaped inside one string (`&lt;VM&gt;…`), hundreds
of thousands of entity references per pool. `xmlrpc.client.loads` hands the text between
two of them to a Python callback each time; here expat collects the whole string in its
own buffer first (`buffer_text`), and the standard library's `Unmarshaller` builds the
values from it. About a third faster than decoding the reply with lxml, and the values
are exactly `loads`' (`use_builtin_types=True`).

Large replies (pools) are read by `decode_reply_in_thread` instead, in a worker thread:
libxml2 releases the GIL while it parses, expat does not, so the event loop keeps serving
other requests meanwhile.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any
from xml.parsers import expat

from lxml import etree

MIN_TEXT_BUFFER = 64 * 1024
MAX_TEXT_BUFFER = 1 << 30  # expat's limit is an int; a longer string comes in pieces
# What the Unmarshaller raises for values it cannot read (an <int> that is not a number, ...).
_UNREADABLE = (xmlrpc.client.ResponseError, ValueError, TypeError)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


class ReplyError(ValueError):
    """The reply is not a well-formed XML-RPC methodResponse."""


def encode_call(method: str, params: tuple[Any, ...]) -> bytes:
    return xmlrpc.client.dumps(params, method, allow_none=False).encode()


def decode_reply(body: bytes) -> Any:
    """The value of a methodResponse; raises `xmlrpc.client.Fault` for a fault."""
    unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    unmarshaller.xml(None, None)  # text arrives decoded: no second decoding of strings
    parser = expat.ParserCreate(None, None)
    parser.buffer_text = True
    parser.buffer_size = min(max(len(body), MIN_TEXT_BUFFER), MAX_TEXT_BUFFER)
    root: list[str] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        if not root:
            root.append(tag)
        unmarshaller.start(tag, attributes)

    parser.StartElementHandler = start
    parser.EndElementHandler = unmarshaller.end
    parser.CharacterDataHandler = unmarshaller.data
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, *_UNREADABLE) as err:
        raise ReplyError(str(err) or type(err).__name__) from None
    if root != ["methodResponse"]:
        raise ReplyError("not a methodResponse")
    return _value(unmarshaller)


def decode_reply_in_thread(body: bytes) -> Any:
    """`decode_reply` by lxml, for a worker thread: the same values, the same errors."""
    try:
        root = etree.fromstring(body, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as err:
        raise ReplyError(str(err) or type(err).__name__) from None
    if root.tag != "methodResponse":
        raise ReplyError("not a methodResponse")
    unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    unmarshaller.xml(None, None)
    try:
        _feed(unmarshaller, root)
    except _UNREADABLE as err:
        raise ReplyError(str(err) or type(err).__name__) from None
    return _value(unmarshaller)


def _feed(unmarshaller: xmlrpc.client.Unmarshaller, element: etree._Element) -> None:
    """The events a streaming parser would have given for `element`, in document order."""
    unmarshaller.start(element.tag, dict(element.attrib))
    if element.text:
        unmarshaller.data(element.text)
    for child in element.iterchildren(etree.Element):
        _feed(unmarshaller, child)
        if child.tail:
            unmarshaller.data(child.tail)
    unmarshaller.end(element.tag)


def _value(unmarshaller: xmlrpc.client.Unmarshaller) -> Any:
    try:
        values = unmarshaller.close()
    except xmlrpc.client.Fault:
        raise
    except _UNREADABLE as err:
        raise ReplyError(str(err) or type(err).__name__) from None
    if len(values) != 1:
        raise ReplyError("not a methodResponse with one value")
    return values[0]
