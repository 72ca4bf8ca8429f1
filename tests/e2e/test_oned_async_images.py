"""CreateImage when marking the saved disk fails (issue 15): nothing may stay behind."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ec2gw.one import client
from ec2gw.one.errors import INTERNAL, OneError
from tests.e2e.conftest import eventually
from tests.e2e.test_network import _running


def test_create_image_cleans_up_when_marking_fails(gateway, ec2, ami, monkeypatch):
    """The image oned made was left unmarked, holding the name: a retry was
    InvalidAMIName.Duplicate for good."""
    instance_id = _running(ec2, ami)
    name = gateway.backend.user_name("half-made")
    call = client.OneClient.call

    async def failing_update(self, session, method, *args):
        if method == "one.image.update":
            raise OneError(method, INTERNAL, "replication timed out")
        return await call(self, session, method, *args)

    monkeypatch.setattr(client.OneClient, "call", failing_update)
    with pytest.raises(ClientError):
        ec2.create_image(InstanceId=instance_id, Name=name)
    monkeypatch.undo()
    mine = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    assert mine["Images"] == []
    if not gateway.backend.real:
        # The embedded OpenNebula keeps the VM in HOTPLUG_SAVEAS when the saving image is
        # deleted; oned ends the save-as (ImageManager::delete_image, SAVED_VM_ID).
        return

    def retried() -> str | None:  # oned ends the VM's save-as once the image is deleted
        try:
            return ec2.create_image(InstanceId=instance_id, Name=name)["ImageId"]
        except ClientError as err:
            assert err.response["Error"]["Code"] in (
                "IncorrectInstanceState",
                "InvalidAMIName.Duplicate",  # while oned deletes the first one
            )
            return None

    image_id = eventually(retried, timeout=20)
    eventually(lambda: ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] != "pending")
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.deregister_image(ImageId=image_id)
