"""The decoder reads oned's real replies exactly as the standard library does."""

import os
import xmlrpc.client
from pathlib import Path

import pytest

from ec2gw.one.xmlrpc import ReplyError, decode_reply

SHARED = Path(os.environ.get("EC2GW_SHARED") or Path(__file__).resolve().parents[3] / "shared")
REPLIES = sorted((SHARED / "fixtures" / "oned-6.10.5").glob("*.methodResponse.xml"))


@pytest.mark.parametrize("path", REPLIES, ids=[p.name for p in REPLIES])
def test_same_values_as_the_standard_library(path):
    body = path.read_bytes()
    (expected,), _ = xmlrpc.client.loads(body, use_builtin_types=True)
    assert decode_reply(body) == expected


def test_all_types_and_faults():
    values = [True, False, 7, -1, 1.5, "a<b&c", ["x", [1]], {"k": "v"}, b"\x00\x01"]
    body = xmlrpc.client.dumps((values,), methodresponse=True).encode()
    assert decode_reply(body) == values
    i8 = b"<methodResponse><params><param><value><i8>-1</i8></value></param></params>"
    i8 += b"</methodResponse>"
    assert decode_reply(i8) == -1
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(-501, "Not enough parameters")).encode()
    with pytest.raises(xmlrpc.client.Fault) as err:
        decode_reply(fault)
    assert err.value.faultCode == -501
    for junk in (b"", b"<html/>", b"not xml", b"<methodResponse/>"):
        with pytest.raises(ReplyError):
            decode_reply(junk)


def test_there_are_replies():
    assert len(REPLIES) >= 30
