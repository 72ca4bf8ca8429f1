"""A sick OpenNebula, throttling, revoked credentials, hostile input and secrets in logs."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.e2e.test_first_actions import _signed_raw, error_of

INTERNAL = 0x2000


@pytest.fixture
def sim(gateway):
    """The embedded OpenNebula, for fault injection: tests using it are `embedded_only`."""
    sim = gateway.backend.sim
    yield sim
    sim.faults.clear()
    sim.faults.available()


@pytest.mark.embedded_only
def test_slow_opennebula_times_out_as_unavailable(gateway, sim):
    with gateway.variant(opennebula__timeout=0.5) as impatient:
        sim.faults.delay("one.imagepool.info", 2.0)
        with pytest.raises(ClientError) as err:  # the call would succeed after 2 s
            impatient.client().describe_images()
        assert error_of(err) == ("Unavailable", 503)
        sim.faults.clear()
        assert impatient.client().describe_images()["Images"]


@pytest.mark.embedded_only
@pytest.mark.parametrize("mode", ["503", "close"])
def test_opennebula_down_then_up_needs_no_restart(gateway, ec2, sim, mode):
    sim.faults.unavailable(mode)
    with pytest.raises(ClientError) as err:
        ec2.describe_images()
    assert error_of(err) == ("Unavailable", 503)
    assert httpx.get(gateway.url + "/readyz").status_code == 503
    assert httpx.get(gateway.url + "/healthz").status_code == 200
    sim.faults.available()
    assert ec2.describe_images()["Images"]
    assert httpx.get(gateway.url + "/readyz").status_code == 200


@pytest.mark.embedded_only
def test_refused_connections_recover(gateway, ec2, sim):
    sim.faults.unavailable("refuse", seconds=1.0)
    with pytest.raises(ClientError) as err:
        ec2.describe_images()
    assert error_of(err) == ("Unavailable", 503)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert ec2.describe_images()["Images"]
            break
        except (ClientError, EndpointConnectionError):
            assert time.monotonic() < deadline
            time.sleep(0.2)


@pytest.mark.embedded_only
def test_internal_error_leaks_nothing(gateway, sim):
    sim.faults.fail("one.imagepool.info", INTERNAL, "Parse error: secret detail /var/lib/one")
    reply = _signed_raw(gateway, "POST", {"Action": "DescribeImages"})
    assert reply.status_code == 500
    root = etree.fromstring(reply.content)
    assert root.findtext("Errors/Error/Code") == "InternalError"
    assert b"secret detail" not in reply.content and b"Traceback" not in reply.content


def test_failure_half_way_through_run_instances_leaves_no_orphans(gateway):
    key = gateway.new_user("quota-user")
    client = gateway.client(key)
    gateway.one("one.user.quota", key.uid, 'VM = [ VMS = "2" ]')
    ami = client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    with pytest.raises(ClientError) as err:
        client.run_instances(ImageId=ami, MinCount=5, MaxCount=5)
    assert error_of(err) == ("InstanceLimitExceeded", 400)
    assert client.describe_instances()["Reservations"] == []
    pool = etree.fromstring(gateway.one("one.vmpool.info", key.uid, -1, -1, -1).encode())
    assert pool.findall("VM") == []  # no VM of that user is left alive
    # within the quota, the same request succeeds with MaxCount capped by nothing else
    reservation = client.run_instances(ImageId=ami, MinCount=1, MaxCount=2)
    assert len(reservation["Instances"]) == 2
    client.terminate_instances(InstanceIds=[i["InstanceId"] for i in reservation["Instances"]])


def test_throttling_per_access_key(gateway):
    other = gateway.new_user("throttle-other")
    with gateway.variant(gateway__rate_limit=1.0, gateway__rate_burst=3.0) as strict:
        client = strict.client()
        codes = []
        for _ in range(6):
            try:
                client.describe_regions()
                codes.append("ok")
            except ClientError as err:
                meta = err.response["ResponseMetadata"]
                codes.append((err.response["Error"]["Code"], meta["HTTPStatusCode"]))
        assert codes[:3] == ["ok", "ok", "ok"]
        assert ("RequestLimitExceeded", 503) in codes
        assert strict.client(other).describe_regions()["Regions"]  # others are not starved


def test_disabled_user_and_deleted_key_stop_working(gateway):
    key = gateway.new_user("leaver")
    with gateway.variant(auth__key_cache_seconds=0.2) as fresh:
        client = fresh.client(key)
        assert client.describe_regions()["Regions"]
        gateway.one("one.user.enable", key.uid, False)
        time.sleep(0.3)
        with pytest.raises(ClientError) as err:
            client.describe_regions()
        assert error_of(err) == ("AuthFailure", 401)
        gateway.one("one.user.enable", key.uid, True)
        time.sleep(0.3)
        assert client.describe_regions()["Regions"]
        assert gateway.delete_key(key.access_key_id)
        time.sleep(0.3)
        with pytest.raises(ClientError) as err:
            client.describe_regions()
        assert error_of(err) == ("AuthFailure", 401)


PARAM_NAMES = st.text(alphabet="AFNVcilmnrtuxy.0123456789_-", min_size=1, max_size=24)
PARAM_VALUES = st.text(max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    action=st.sampled_from(
        ["DescribeInstances", "DescribeImages", "RunInstances", "CreateTags", "Bogus", ""]
    ),
    params=st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=6),
)
def test_random_parameters_never_cause_a_server_error(gateway, action, params):
    params = {k: v for k, v in params.items() if k not in ("Action", "MinCount", "MaxCount")}
    reply = _signed_raw(gateway, "POST", {"Action": action, **params})
    assert reply.status_code < 500, reply.text
    root = etree.fromstring(reply.content)
    if reply.status_code != 200:
        assert root.findtext("Errors/Error/Code")


@pytest.mark.parametrize(
    "body",
    [
        b"Action=DescribeImages&Filter.99999.Name=name&Filter.99999.Value.1=x",
        b"Action=DescribeImages&Filter.1.Name=name&Filter.1.Name=other",
        b"Action=DescribeImages&ImageId.1=\xff\xfe",
        b"Action=RunInstances&ImageId=ami-00000000&MinCount=99999999999999999999&MaxCount=1",
        b"Action=DescribeInstances&MaxResults=-5",
        b"Action=DescribeImages&" + b"&".join(b"Owner.%d=self" % i for i in range(2000)),
    ],
)
def test_hostile_bodies_get_client_errors(gateway, body):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=gateway.url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    SigV4Auth(
        Credentials(gateway.key.access_key_id, gateway.key.secret), "ec2", gateway.region
    ).add_auth(request)
    prepared = request.prepare()
    reply = httpx.post(prepared.url, headers=dict(prepared.headers), content=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert etree.fromstring(reply.content).findtext("Errors/Error/Code")


def test_no_secret_reaches_the_logs(gateway, caplog):
    caplog.set_level(logging.DEBUG)
    client = gateway.client()
    client.describe_regions()
    client.describe_instances()
    with pytest.raises(ClientError):
        gateway.client(signature_version="v2").describe_images(ImageIds=["ami-0000ffff"])
    url = client.generate_presigned_url("describe_regions", Params={})
    httpx.get(url)
    with pytest.raises(ClientError):
        gateway.client(
            gateway.key.__class__(**{**gateway.key.__dict__, "secret": "x" * 40})
        ).describe_regions()
    # The gateway's records only: botocore's own client-side debug logs print signatures.
    ours = [
        r
        for r in caplog.records
        if r.name.split(".")[0] in ("ec2gw", "uvicorn", "httpx")
        and gateway.url not in r.getMessage()  # this test's own httpx client
    ]
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in ours)
    assert "request_id=" in text  # the request lines were captured
    settings_ = gateway.settings
    signature = url.split("X-Amz-Signature=")[1]
    for secret in (
        gateway.key.secret,
        settings_.opennebula.server_secret,
        signature,
        gateway.backend.oneadmin_session.split(":", 1)[1],
    ):
        assert secret not in text
    assert "serveradmin:demo:" not in text


ACTION = 0x800


@pytest.mark.embedded_only
def test_failed_associate_address_loses_no_address(gateway, ec2, sim):
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    (instance,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"]
    instance_id = instance["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1})
    allocation = ec2.allocate_address(Domain="vpc")
    sim.faults.fail("one.vm.attachnic", ACTION, "driver failure", times=1)
    with pytest.raises(ClientError):
        ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance_id)
    (address,) = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"]
    assert address["PublicIp"] == allocation["PublicIp"] and "InstanceId" not in address
    described = ec2.describe_instances(InstanceIds=[instance_id])
    assert "PublicIpAddress" not in described["Reservations"][0]["Instances"][0]
    ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance_id)
    ec2.disassociate_address(
        AssociationId=ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])[
            "Addresses"
        ][0]["AssociationId"]
    )
    ec2.release_address(AllocationId=allocation["AllocationId"])
    ec2.terminate_instances(InstanceIds=[instance_id])


@pytest.mark.embedded_only
def test_failed_attach_volume_leaves_the_volume_available(gateway, ec2, sim):
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    (instance,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"]
    instance_id, zone = instance["InstanceId"], instance["Placement"]["AvailabilityZone"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1})
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    sim.faults.fail("one.vm.attach", ACTION, "driver failure", times=1)
    with pytest.raises(ClientError):
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdb")
    (volume,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["State"] == "available" and volume["Attachments"] == []
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/vdb")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    ec2.detach_volume(VolumeId=volume_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    ec2.delete_volume(VolumeId=volume_id)
    ec2.terminate_instances(InstanceIds=[instance_id])
