"""Elastic IPs, security groups, network interfaces and the VPC view, with boto3 and the aws cli."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_first_actions import error_of


def _running(ec2, ami: str, **kwargs) -> str:
    (instance,) = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kwargs)["Instances"]
    ec2.get_waiter("instance_running").wait(
        InstanceIds=[instance["InstanceId"]], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return instance["InstanceId"]


def _instance(ec2, instance_id: str) -> dict:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_elastic_ip_lifecycle(gateway, ec2, ami):
    instance_id = _running(ec2, ami)
    allocated = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "k", "Value": "v"}]}],
    )
    allocation_id, public_ip = allocated["AllocationId"], allocated["PublicIp"]
    assert allocation_id.startswith("eipalloc-") and public_ip.startswith("198.51.100.")
    (listed,) = ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"]
    assert listed["PublicIp"] == public_ip and "InstanceId" not in listed
    assert listed["Tags"] == [{"Key": "k", "Value": "v"}]

    association_id = ec2.associate_address(AllocationId=allocation_id, InstanceId=instance_id)[
        "AssociationId"
    ]
    instance = _instance(ec2, instance_id)
    assert instance["PublicIpAddress"] == public_ip
    assert instance["PrivateIpAddress"].startswith("10.0.0.")
    (eni,) = instance["NetworkInterfaces"]
    assert eni["Association"]["PublicIp"] == public_ip
    by_instance = ec2.describe_addresses(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["Addresses"]
    assert [a["AssociationId"] for a in by_instance] == [association_id]
    assert by_instance[0]["PrivateIpAddress"] == instance["PrivateIpAddress"]
    assert by_instance[0]["NetworkInterfaceId"] == eni["NetworkInterfaceId"]
    # a second VM cannot take it without AllowReassociation
    other_id = _running(ec2, ami)
    with pytest.raises(ClientError) as err:
        ec2.associate_address(AllocationId=allocation_id, InstanceId=other_id)
    assert error_of(err) == ("Resource.AlreadyAssociated", 400)
    with pytest.raises(ClientError) as err:
        ec2.release_address(AllocationId=allocation_id)
    assert error_of(err) == ("InvalidIPAddress.InUse", 400)
    ec2.associate_address(AllocationId=allocation_id, InstanceId=other_id, AllowReassociation=True)
    assert _instance(ec2, instance_id).get("PublicIpAddress") is None
    assert _instance(ec2, other_id)["PublicIpAddress"] == public_ip

    ec2.disassociate_address(AssociationId=association_id)
    assert _instance(ec2, other_id).get("PublicIpAddress") is None
    with pytest.raises(ClientError) as err:
        ec2.disassociate_address(AssociationId=association_id)
    assert error_of(err) == ("InvalidAssociationID.NotFound", 400)
    ec2.release_address(AllocationId=allocation_id)
    with pytest.raises(ClientError) as err:
        ec2.describe_addresses(AllocationIds=[allocation_id])
    assert error_of(err) == ("InvalidAllocationID.NotFound", 400)
    ec2.terminate_instances(InstanceIds=[instance_id, other_id])


def test_elastic_ip_errors_change_nothing(ec2):
    before = ec2.describe_addresses()["Addresses"]
    for call, kwargs, code in (
        (ec2.release_address, {"AllocationId": "eipalloc-zz"}, "InvalidAllocationID.Malformed"),
        (
            ec2.release_address,
            {"AllocationId": "eipalloc-0000ffff"},
            "InvalidAllocationID.NotFound",
        ),
        (ec2.release_address, {"PublicIp": "203.0.113.9"}, "InvalidAddress.NotFound"),
        (ec2.allocate_address, {"DryRun": True}, "DryRunOperation"),
        (ec2.allocate_address, {"Address": "10.9.9.9"}, "InvalidAddress.NotFound"),  # no pool
        (
            ec2.associate_address,
            {"AllocationId": "eipalloc-0000ffff", "InstanceId": "i-0000ffff"},
            "InvalidAllocationID.NotFound",
        ),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert error_of(err)[0] == code, (call, kwargs)
    assert ec2.describe_addresses()["Addresses"] == before


def test_aws_cli_addresses(gateway):
    allocated = gateway.aws_json("ec2", "allocate-address", "--domain", "vpc")
    listed = gateway.aws_json(
        "ec2", "describe-addresses", "--filters", f"Name=public-ip,Values={allocated['PublicIp']}"
    )
    assert [a["AllocationId"] for a in listed["Addresses"]] == [allocated["AllocationId"]]
    gateway.aws_json("ec2", "release-address", "--allocation-id", allocated["AllocationId"])


def test_security_groups(gateway, ec2, ami):
    created = ec2.create_security_group(
        GroupName="web",
        Description="web servers",
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "t", "Value": "1"}]}
        ],
    )
    group_id = created["GroupId"]
    assert group_id.startswith("sg-") and created["Tags"] == [{"Key": "t", "Value": "1"}]
    with pytest.raises(ClientError) as err:
        ec2.create_security_group(GroupName="web", Description="again")
    assert error_of(err) == ("InvalidGroup.Duplicate", 400)
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert group["GroupName"] == "web" and group["Description"] == "web servers"
    assert group["IpPermissions"] == []
    assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"
    assert group["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    authorized = ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 22,
                "ToPort": 22,
                "IpRanges": [{"CidrIp": "192.0.2.0/24", "Description": "office"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 8000,
                "ToPort": 8080,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            },
            {
                "IpProtocol": "icmp",
                "FromPort": 8,
                "ToPort": -1,
                "IpRanges": [{"CidrIp": "10.0.0.0/8"}],
            },
        ],
    )
    assert len(authorized["SecurityGroupRules"]) == 3
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    ingress = {
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in group["IpPermissions"]
    }
    assert ingress[("tcp", 22, 22)]["IpRanges"] == [
        {"CidrIp": "192.0.2.0/24", "Description": "office"}
    ]
    assert ingress[("tcp", 8000, 8080)]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert ingress[("icmp", 8, -1)]["IpRanges"] == [{"CidrIp": "10.0.0.0/8"}]
    with pytest.raises(ClientError) as err:
        ec2.authorize_security_group_ingress(
            GroupId=group_id, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="192.0.2.0/24"
        )
    assert error_of(err) == ("InvalidPermission.Duplicate", 400)
    for bad in (
        {
            "IpProtocol": "tcp",
            "FromPort": 1,
            "ToPort": 2,
            "UserIdGroupPairs": [{"GroupId": group_id}],
        },
        {"IpProtocol": "gre", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 9, "ToPort": 1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "300.0.0.0/8"}]},
    ):
        with pytest.raises(ClientError) as err:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[bad])
        assert error_of(err)[0] == "InvalidParameterValue", bad
    by_port = ec2.describe_security_groups(
        Filters=[{"Name": "ip-permission.from-port", "Values": ["8000"]}]
    )["SecurityGroups"]
    assert [g["GroupId"] for g in by_port] == [group_id]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    assert len(rules["SecurityGroupRules"]) == 4
    icmp = next(r for r in rules["SecurityGroupRules"] if r["IpProtocol"] == "icmp")
    ec2.revoke_security_group_ingress(
        GroupId=group_id, SecurityGroupRuleIds=[icmp["SecurityGroupRuleId"]]
    )
    ec2.revoke_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 8000,
                "ToPort": 8080,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    with pytest.raises(ClientError) as err:
        ec2.revoke_security_group_ingress(
            GroupId=group_id, IpProtocol="udp", FromPort=53, ToPort=53, CidrIp="0.0.0.0/0"
        )
    assert error_of(err) == ("InvalidPermission.NotFound", 400)
    ec2.revoke_security_group_egress(
        GroupId=group_id,
        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    ec2.authorize_security_group_egress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    (group,) = ec2.describe_security_groups(GroupNames=["web"])["SecurityGroups"]
    assert [p["FromPort"] for p in group["IpPermissions"]] == [22]
    assert [p["FromPort"] for p in group["IpPermissionsEgress"]] == [443]

    instance_id = _running(ec2, ami, SecurityGroupIds=[group_id])
    instance = _instance(ec2, instance_id)
    assert instance["SecurityGroups"] == [{"GroupId": group_id, "GroupName": "web"}]
    assert instance["NetworkInterfaces"][0]["Groups"] == [{"GroupId": group_id, "GroupName": "web"}]
    in_group = ec2.describe_instances(Filters=[{"Name": "instance.group-name", "Values": ["web"]}])
    assert [i["InstanceId"] for r in in_group["Reservations"] for i in r["Instances"]] == [
        instance_id
    ]
    with pytest.raises(ClientError) as err:
        ec2.delete_security_group(GroupId=group_id)
    assert error_of(err) == ("DependencyViolation", 400)
    by_name = _running(ec2, ami, SecurityGroups=["web", "default"])
    assert {g["GroupName"] for g in _instance(ec2, by_name)["SecurityGroups"]} == {"web", "default"}
    with pytest.raises(ClientError) as err:
        ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SecurityGroups=["nope"])
    assert error_of(err) == ("InvalidGroup.NotFound", 400)
    ec2.terminate_instances(InstanceIds=[by_name])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[by_name], WaiterConfig={"Delay": 1})
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1})
    ec2.delete_security_group(GroupId=group_id)
    with pytest.raises(ClientError) as err:
        ec2.describe_security_groups(GroupIds=[group_id])
    assert error_of(err) == ("InvalidGroup.NotFound", 400)


def test_aws_cli_security_groups(gateway):
    created = gateway.aws_json(
        "ec2", "create-security-group", "--group-name", "cli-sg", "--description", "from the cli"
    )
    gateway.aws_json(
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        created["GroupId"],
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "203.0.113.0/24",
    )
    listed = gateway.aws_json("ec2", "describe-security-groups", "--group-names", "cli-sg")
    (permission,) = listed["SecurityGroups"][0]["IpPermissions"]
    assert (permission["FromPort"], permission["IpRanges"]) == (22, [{"CidrIp": "203.0.113.0/24"}])
    gateway.aws_json("ec2", "delete-security-group", "--group-id", created["GroupId"])


def test_run_instances_with_groups_on_its_network_interface(ec2, ami):
    """Ansible's ec2_instance puts subnet and groups on NetworkInterface.1."""
    group_id = ec2.create_security_group(GroupName="nic-web", Description="on the NIC")["GroupId"]
    subnet_id = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    (instance,) = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [group_id]}],
    )["Instances"]
    described = _instance(ec2, instance["InstanceId"])
    assert [g["GroupId"] for g in described["SecurityGroups"]] == [group_id]
    assert described["SubnetId"] == subnet_id
    for bad, code in (
        ({"SubnetId": subnet_id}, "InvalidParameterCombination"),
        (
            {"NetworkInterfaces": [{"DeviceIndex": 1, "SubnetId": subnet_id}]},
            "InvalidParameterValue",
        ),
    ):
        kwargs = {"NetworkInterfaces": [{"DeviceIndex": 0, "Groups": [group_id]}], **bad}
        with pytest.raises(ClientError) as err:
            ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, **kwargs)
        assert error_of(err)[0] == code
    with pytest.raises(ClientError) as err:
        ec2.modify_instance_attribute(InstanceId=instance["InstanceId"], Groups=[group_id])
    assert error_of(err) == ("UnsupportedOperation", 400)
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
