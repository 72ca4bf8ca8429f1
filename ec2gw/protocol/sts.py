"""STS `GetCallerIdentity`, the one action of another service that ec2gw answers.

Tools that send every AWS client to one `endpoint_url` ask STS who they are before they
touch EC2: Ansible's amazon.aws `get_aws_account_id` (ec2_security_group and others) fails
the task when neither STS GetCallerIdentity nor IAM GetUser answers. The caller is already
known from the signature, so the answer is exact: the account is the OpenNebula user's
12-digit account id, the ARN names the user. The document is the awsquery protocol's
(`<…Result>` and `<ResponseMetadata>`), in STS's namespace, as botocore's query parser
reads it. Nothing else of STS or IAM is served.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from ec2gw.protocol.serializer import XML_DECLARATION

ACTION = "GetCallerIdentity"
NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def caller_identity(account: str, username: str, request_id: str) -> bytes:
    arn = f"arn:aws:iam::{account}:user/{username}"
    return (
        f'{XML_DECLARATION}<GetCallerIdentityResponse xmlns="{NAMESPACE}">'
        "<GetCallerIdentityResult>"
        f"<Arn>{escape(arn)}</Arn>"
        f"<UserId>AIDA{account}</UserId>"
        f"<Account>{account}</Account>"
        "</GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()
