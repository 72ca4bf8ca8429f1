"""Tenant isolation: every action tried by one tenant on another tenant's resources.

Two users in different groups. Nothing of one is visible to or changeable by the other.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def tenants(gateway):
    group_b = gateway.one("one.group.allocate", gateway.backend.user_name("tenant-b"))
    alice = gateway.client(gateway.new_user("iso-alice", group=1))
    bob = gateway.client(gateway.new_user("iso-bob", group=group_b))
    ami = alice.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = alice.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "a"}]}],
    )["Instances"][0]["InstanceId"]
    alice.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1})
    image_id = alice.register_image(Name="alice-private", ImageLocation="/var/tmp/a.qcow2")[
        "ImageId"
    ]
    alice.create_key_pair(KeyName="alice-key")
    yield alice, bob, instance_id, image_id
    alice.terminate_instances(InstanceIds=[instance_id])
    alice.deregister_image(ImageId=image_id)


ATTEMPTS = [
    ("describe_instances", lambda i, m: {"InstanceIds": [i]}),
    ("describe_instance_status", lambda i, m: {"InstanceIds": [i]}),
    ("stop_instances", lambda i, m: {"InstanceIds": [i]}),
    ("start_instances", lambda i, m: {"InstanceIds": [i]}),
    ("reboot_instances", lambda i, m: {"InstanceIds": [i]}),
    ("terminate_instances", lambda i, m: {"InstanceIds": [i]}),
    ("describe_instance_attribute", lambda i, m: {"InstanceId": i, "Attribute": "userData"}),
    (
        "modify_instance_attribute",
        lambda i, m: {"InstanceId": i, "DisableApiTermination": {"Value": True}},
    ),
    ("get_console_output", lambda i, m: {"InstanceId": i}),
    ("create_tags", lambda i, m: {"Resources": [i], "Tags": [{"Key": "x", "Value": "y"}]}),
    ("delete_tags", lambda i, m: {"Resources": [i]}),
    ("create_image", lambda i, m: {"InstanceId": i, "Name": "stolen"}),
    ("describe_images", lambda i, m: {"ImageIds": [m]}),
    ("deregister_image", lambda i, m: {"ImageId": m}),
    (
        "modify_image_attribute",
        lambda i, m: {"ImageId": m, "LaunchPermission": {"Add": [{"Group": "all"}]}},
    ),
    ("describe_image_attribute", lambda i, m: {"ImageId": m, "Attribute": "description"}),
    ("create_tags", lambda i, m: {"Resources": [m], "Tags": [{"Key": "x", "Value": "y"}]}),
    ("run_instances", lambda i, m: {"ImageId": m, "MinCount": 1, "MaxCount": 1}),
]


@pytest.mark.parametrize(("action", "arguments"), ATTEMPTS, ids=[a for a, _ in ATTEMPTS])
def test_other_tenant_can_neither_see_nor_change(tenants, action, arguments):
    alice, bob, instance_id, image_id = tenants
    with pytest.raises(ClientError) as err:
        getattr(bob, action)(**arguments(instance_id, image_id))
    assert err.value.response["Error"]["Code"] in (
        "InvalidInstanceID.NotFound",
        "InvalidAMIID.NotFound",
    )


def test_listings_show_nothing_of_the_other_tenant(tenants):
    alice, bob, instance_id, image_id = tenants
    assert bob.describe_instances()["Reservations"] == []
    assert bob.describe_instance_status(IncludeAllInstances=True)["InstanceStatuses"] == []
    assert image_id not in {i["ImageId"] for i in bob.describe_images()["Images"]}
    assert bob.describe_key_pairs()["KeyPairs"] == []
    assert bob.describe_tags()["Tags"] == []
    bob.delete_key_pair(KeyName="alice-key")  # EC2 answers success for unknown names...
    assert [k["KeyName"] for k in alice.describe_key_pairs()["KeyPairs"]] == ["alice-key"]
    mine = alice.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert mine["State"]["Name"] == "running" and mine["Tags"] == [{"Key": "owner", "Value": "a"}]
    assert alice.describe_images(ImageIds=[image_id])["Images"][0]["Public"] is False
