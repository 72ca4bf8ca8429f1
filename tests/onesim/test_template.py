"""OpenNebula's template syntax (text and XML) and how templates are written back."""

from __future__ import annotations

import pytest

from ec2gw.onesim.requirements import RequirementError, matches
from ec2gw.onesim.template import Template, TemplateError
from tests.onesim.conftest import Cloud


def test_text_syntax() -> None:
    t = Template.parse(
        'name = "web"\n'
        "cpu=0.5\n"
        "# a comment\n"
        '  DESCRIPTION = "say \\"hi\\"\n   on two lines"\n'
        'DISK = [ IMAGE_ID = 7, size = "10" ]\n'
        "DISK=[\n  IMAGE = ubuntu,\n  IMAGE_UNAME = oneadmin ]\n"
        "EMPTY =\n"
        "VEC = [ ]\n"
    )
    assert t.get("NAME") == "web" and t.get("CPU") == "0.5"
    assert t.get("DESCRIPTION") == 'say "hi"\n   on two lines'
    assert t.vectors("DISK") == [
        {"IMAGE_ID": "7", "SIZE": "10"},
        {"IMAGE": "ubuntu", "IMAGE_UNAME": "oneadmin"},
    ]
    assert t.get("EMPTY") == "" and t.vector("VEC") == {}


def test_xml_syntax_and_rendering() -> None:
    t = Template.parse(
        "<TEMPLATE><NAME><![CDATA[x]]></NAME><NIC><network_id>0</network_id></NIC>"
        "<A>1</A></TEMPLATE>"
    )
    assert t.vector("NIC") == {"NETWORK_ID": "0"}
    assert t.to_xml() == (
        "<TEMPLATE><A><![CDATA[1]]></A><NAME><![CDATA[x]]></NAME>"
        "<NIC><NETWORK_ID><![CDATA[0]]></NETWORK_ID></NIC></TEMPLATE>"
    )
    assert Template.parse(t.to_text()).attrs == t.attrs


@pytest.mark.parametrize(
    "text",
    [
        'A = "x]]>y"',
        "A = x]]>",
        "<TEMPLATE><A>]]&gt;</A></TEMPLATE>",
        "= 1",
        'A = [ B = "1" C = 2 ]',
    ],
)
def test_rejected(text: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(text)


def test_parse_errors_over_the_wire(cloud: Cloud) -> None:
    reply = cloud.admin.error("one.template.allocate", 'NAME = "t"\nX = "a]]>b"')
    assert reply[2] == 8192 and reply[1].startswith("[one.template.allocate] Parse error")


def test_update_replace_and_merge(cloud: Cloud) -> None:
    cloud.admin("one.template.update", 0, 'EXTRA = "1"', 1)
    doc = cloud.admin("one.template.info", 0)
    assert "<EXTRA><![CDATA[1]]></EXTRA>" in doc and "<MEMORY>" in doc
    cloud.admin("one.template.update", 0, 'ONLY = "this"', 0)
    doc = cloud.admin("one.template.info", 0)
    assert "<TEMPLATE><ONLY><![CDATA[this]]></ONLY></TEMPLATE>" in doc


def test_requirements() -> None:
    host = {"ID": "3", "CLUSTER_ID": "100", "HOSTNAME": "edge-1", "HYPERVISOR": "dummy"}
    assert matches("ID = 3", host)
    assert matches("(CLUSTER_ID = 100) & !(PUBLIC_CLOUD = YES)", host)
    assert not matches("CLUSTER_ID = 0 | ID = 4", host)
    assert matches('HOSTNAME = "edge-*"', host)
    assert matches("ID != 4 & CLUSTER_ID > 10", host)
    with pytest.raises(RequirementError):
        matches("ID = ", host)
