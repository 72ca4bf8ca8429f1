"""The server side: persistence, concurrency, HTTP keep-alive, the wire format, faults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xmlrpc.client
from pathlib import Path

import httpx
import pytest

from ec2gw.onesim import EmbeddedOpenNebula
from tests.onesim.conftest import Cloud, One, seed, start_sim

VM = 'NAME = "{name}"\nCPU = "0.1"\nMEMORY = "64"\nDISK = [ IMAGE_ID = 0 ]'


def test_state_survives_a_restart(tmp_path: Path) -> None:
    sim = start_sim(tmp_path)
    one = One(sim.url, sim.oneadmin_session)
    seed(one)
    vm = one("one.vm.allocate", VM.format(name="kept"))
    one("one.vm.action", "poweroff", vm)
    one("one.user.allocate", "alice", "pw", "core", [1])
    session, secret = sim.oneadmin_session, sim.server_secret
    sim.stop()

    again = EmbeddedOpenNebula(tmp_path)
    again.start()
    try:
        assert again.oneadmin_session == session and again.server_secret == secret
        one = One(again.url, again.oneadmin_session)
        doc = one("one.vm.info", vm)
        assert "<NAME>kept</NAME>" in doc and "<STATE>8</STATE>" in doc
        assert One(again.url, "alice:pw")("one.user.info", -1)
        assert f"<ENDPOINT><![CDATA[{again.url}]]></ENDPOINT>" in one("one.zone.info", 0)
        # Ids continue; the VM resumes on its host.
        assert one("one.vm.allocate", VM.format(name="next")) == vm + 1
        one("one.vm.action", "resume", vm)
        assert "<LCM_STATE>3</LCM_STATE>" in one("one.vm.info", vm)
        assert (tmp_path / "one.db").exists()
        assert (tmp_path / "one_auth").read_text().strip() == session
    finally:
        again.stop()


def test_bootstrap_objects(cloud: Cloud) -> None:
    one = cloud.admin
    users = one("one.userpool.info")
    assert "<NAME>serveradmin</NAME>" in users
    assert "<AUTH_DRIVER><![CDATA[server_cipher]]></AUTH_DRIVER>" in users
    groups = one("one.grouppool.info")
    assert "<NAME>oneadmin</NAME>" in groups and "<NAME>users</NAME>" in groups
    ds = one("one.datastorepool.info")
    for name in ("system", "default", "files"):
        assert f"<NAME>{name}</NAME>" in ds
    assert "<TYPE><![CDATA[SYSTEM_DS]]></TYPE>" in ds
    assert "<NAME>default</NAME>" in one("one.secgroup.info", 0)
    assert "<NAME>OpenNebula</NAME>" in one("one.zone.info", 0)
    assert "<NAME>default</NAME>" in one("one.cluster.info", 0)
    assert one("one.system.version") == "6.10.5"


def test_concurrent_calls(cloud: Cloud) -> None:
    errors: list[BaseException] = []
    ids: list[int] = []

    def worker(n: int) -> None:
        try:
            one = One(cloud.sim.url, cloud.sim.oneadmin_session)
            for i in range(5):
                ids.append(one("one.vm.allocate", VM.format(name=f"c{n}-{i}")))
                one("one.vmpool.info", -2, -1, -1, -1)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(ids) == list(range(40))


def test_keep_alive_with_httpx(cloud: Cloud) -> None:
    body = xmlrpc.client.dumps((cloud.sim.oneadmin_session,), "one.system.version")
    with httpx.Client(http1=True) as client:
        ports = set()
        for _ in range(3):
            r = client.post(cloud.sim.url, content=body, headers={"Content-Type": "text/xml"})
            assert r.status_code == 200 and r.headers["content-type"] == "text/xml"
            assert "6.10.5" in r.text
            ports.add(r.extensions["network_stream"].get_extra_info("socket").getsockname()[1])
        assert len(ports) == 1  # one connection reused


def test_wire_format_of_failures_and_faults(cloud: Cloud) -> None:
    def post(body: str) -> str:
        request = urllib.request.Request(cloud.sim.url, body.encode(), {"Content-Type": "text/xml"})
        with urllib.request.urlopen(request) as response:
            return response.read().decode()

    reply = post(xmlrpc.client.dumps((cloud.sim.oneadmin_session, 777), "one.vm.info"))
    assert "<value><i4>1024</i4></value>\n<value><i4>777</i4></value>\n" in reply
    assert reply.rstrip().endswith(
        "<value><i8>-1</i8></value>\n</data></array></value></param>\n</params>\n</methodResponse>"
    )
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(post(xmlrpc.client.dumps((cloud.sim.oneadmin_session,), "one.vm.info")))
    assert fault.value.faultCode == -501 and "Not enough parameters" in fault.value.faultString
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(
            post(xmlrpc.client.dumps((cloud.sim.oneadmin_session, True), "one.vm.info"))
        )
    assert fault.value.faultCode == -501
    with pytest.raises(xmlrpc.client.Fault) as fault:
        xmlrpc.client.loads(post(xmlrpc.client.dumps((cloud.sim.oneadmin_session,), "one.vm.nope")))
    assert fault.value.faultCode == -506


def test_fault_injection(cloud: Cloud) -> None:
    sim, one = cloud.sim, cloud.admin
    sim.faults.fail("one.vm.info", 8192, "injected", times=1)
    assert one.raw("one.vm.info", 0) == [False, "[one.vm.info] injected", 8192, -1, -1]
    assert one.raw("one.vm.info", 0)[2] == 1024  # back to normal
    sim.faults.delay("one.system.version", 0.3)
    started = time.monotonic()
    one("one.system.version")
    assert time.monotonic() - started >= 0.3
    sim.faults.clear()

    sim.faults.unavailable("503")
    with pytest.raises(xmlrpc.client.ProtocolError) as err:
        one("one.system.version")
    assert err.value.errcode == 503
    sim.faults.unavailable("close")
    with pytest.raises((ConnectionError, xmlrpc.client.ProtocolError, OSError)):
        One(sim.url, sim.oneadmin_session)("one.system.version")
    sim.faults.unavailable("refuse")
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=1).close()
    sim.faults.available()
    assert One(sim.url, sim.oneadmin_session)("one.system.version") == "6.10.5"


def test_fault_injection_over_http_and_timed_refusal(cloud: Cloud) -> None:
    sim = cloud.sim
    control = sim.url.replace("/RPC2", "/_sim/faults")

    def configure(body: dict) -> dict:
        request = urllib.request.Request(control, json.dumps(body).encode())
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    assert configure({"fail": {"method": "*", "code": 512, "message": "no", "times": 2}}) == {
        "ok": True
    }
    assert cloud.admin.raw("one.system.version")[1:3] == ["[one.system.version] no", 512]
    configure({"clear": True})
    assert cloud.admin("one.system.version")
    configure({"unavailable": {"mode": "refuse", "seconds": 0.5}})
    time.sleep(0.2)
    with pytest.raises(urllib.error.URLError):
        configure({"clear": True})
    time.sleep(0.8)
    assert One(sim.url, sim.oneadmin_session)("one.system.version") == "6.10.5"


def test_module_entry_point(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "ec2gw.onesim", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert f"http://127.0.0.1:{port}/RPC2" in line
        session = (tmp_path / "one_auth").read_text().strip()
        assert One(f"http://127.0.0.1:{port}/RPC2", session)("one.system.version") == "6.10.5"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_refuse_then_available_at_once(cloud: Cloud) -> None:
    sim = cloud.sim
    for _ in range(3):
        sim.faults.unavailable("refuse")
        sim.faults.available()
    assert One(sim.url, sim.oneadmin_session)("one.system.version") == "6.10.5"
