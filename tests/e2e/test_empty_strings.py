"""RunInstances as Terraform's AWS provider and Packer's amazon plugin send it: `""` for
every optional value left unset (issue 16 item 2). The instance lands as if none of them
had been sent: running, in a zone, with a NIC in that zone's default subnet and a private
IP, as on EC2 (it used to launch with `""` as its zone and no NIC at all)."""

from __future__ import annotations

WAIT = {"Delay": 1, "MaxAttempts": 60}


def test_run_instances_with_empty_optional_strings(ec2):
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    defaults = {
        s["AvailabilityZone"]: s
        for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
            "Subnets"
        ]
    }
    # boto3 sends "" verbatim, as the Go SDKs of Terraform and Packer do.
    (launched,) = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": "", "GroupName": "", "Tenancy": ""},
        SubnetId="",
        KeyName="",
        UserData="",
        IamInstanceProfile={"Name": ""},
        PrivateIpAddress="",
        ClientToken="",
        InstanceType="",
    )["Instances"]
    instance_id = launched["InstanceId"]
    try:
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
        (instance,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0][
            "Instances"
        ]
        zone = instance["Placement"]["AvailabilityZone"]
        assert zone in zones
        subnet = defaults[zone]
        assert instance["SubnetId"] == subnet["SubnetId"]
        assert instance["VpcId"] == subnet["VpcId"]
        assert instance.get("PrivateIpAddress")
        (interface,) = instance["NetworkInterfaces"]
        assert interface["SubnetId"] == subnet["SubnetId"]
        assert interface["PrivateIpAddress"] == instance["PrivateIpAddress"]
        assert "KeyName" not in instance and "IamInstanceProfile" not in instance
        assert instance["InstanceType"]
        assert (
            ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")[
                "UserData"
            ]
            == {}
        )
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
