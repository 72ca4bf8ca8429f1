"""XML-RPC encoding for OpenNebula calls: the standard library's, with a faster reader.

oned's answers are large XML documents escaped inside one string (`&lt;VM&gt;…`), hundreds
of thousands of entity references per pool. `xmlrpc.client.loads` hands the text between
two of them to a Python callback each time; here expat collects the whole string in its
own buffer first (`buffer_text`), and the standard library's `Unmarshaller` builds the
values from it. About a third faster than decoding the reply with lxml, and the values
are exactly `loads`' (`use_builtin_types=True`).
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any
from xml.parsers import expat

MIN_TEXT_BUFFER = 64 * 1024
MAX_TEXT_BUFFER = 1 << 30  # expat's limit is an int; a longer string comes in pieces


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
        values = unmarshaller.close()
    except xmlrpc.client.Fault:
        raise
    except (expat.ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError) as err:
        raise ReplyError(str(err) or type(err).__name__) from None
    if root != ["methodResponse"] or len(values) != 1:
        raise ReplyError("not a methodResponse with one value")
    return values[0]
