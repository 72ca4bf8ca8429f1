"""XML-RPC wire format as oned (xmlrpc-c) writes it, and the errors that end up on it.

`xmlrpc.client.dumps` cannot write `<i8>`, which oned puts at the end of every failure
array (the raft replication index, -1), so replies are marshalled here by hand. The layout
(line breaks included) follows the captured 6.10.5 replies.
"""

from __future__ import annotations

import xmlrpc.client
from dataclasses import dataclass
from xml.sax.saxutils import escape

# Error codes of the reply array (`Request::ErrorCode`).
SUCCESS = 0x0000
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000

# xmlrpc-c fault codes (`XMLRPC_*_ERROR` in xmlrpc-c's base.h).
FAULT_TYPE = -501
FAULT_NO_SUCH_METHOD = -506
FAULT_PARSE = -503


class OneError(Exception):
    """A failure reply: `[false, message, code, object id, -1 (i8)]`. `show_id`: a
    failure other than NO_EXISTS on which oned sets `att.resp_id` (the id is replied)."""

    def __init__(self, code: int, message: str, obj_id: int = -1, show_id: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.obj_id = obj_id
        self.show_id = show_id


class RpcFault(Exception):
    """A real XML-RPC `<fault>` (bad parameter types or counts, unknown method)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Call:
    method: str
    params: tuple


def decode_call(body: bytes) -> Call:
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as err:  # noqa: BLE001 - any malformed body is a parse fault
        raise RpcFault(FAULT_PARSE, f"Call XML not a proper XML-RPC call. {err}") from None
    if method is None:
        raise RpcFault(FAULT_PARSE, "Call XML not a proper XML-RPC call. No methodName")
    return Call(method, params)


_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<methodResponse>\n'


def _value(value: object) -> str:
    if isinstance(value, bool):
        return f"<value><boolean>{int(value)}</boolean></value>"
    if isinstance(value, int):
        return f"<value><i4>{value}</i4></value>"
    if isinstance(value, I8):
        return f"<value><i8>{value.value}</i8></value>"
    return f"<value><string>{escape(str(value))}</string></value>"


@dataclass(frozen=True)
class I8:
    value: int


def _array(items: list[object]) -> str:
    inner = "".join(_value(v) + "\n" for v in items)
    return (
        f"{_HEAD}<params>\n<param><value><array><data>\n{inner}"
        "</data></array></value></param>\n</params>\n</methodResponse>\n"
    )


def success(value: object) -> bytes:
    return _array([True, value, SUCCESS]).encode()


def failure(error: OneError) -> bytes:
    """oned fills the object id in only when the object is missing (`att.resp_id` is set
    on the NO_EXISTS paths) or where a request sets it on purpose (`show_id`); every other
    failure carries -1."""
    obj_id = error.obj_id if error.code == NO_EXISTS or error.show_id else -1
    return _array([False, error.message, error.code, obj_id, I8(-1)]).encode()


def fault(error: RpcFault) -> bytes:
    return (
        f"{_HEAD}<fault><value><struct>\n"
        f"<member><name>faultCode</name><value><i4>{error.code}</i4></value></member>\n"
        f"<member><name>faultString</name><value><string>{escape(error.message)}"
        "</string></value></member>\n</struct></value></fault>\n</methodResponse>\n"
    ).encode()
