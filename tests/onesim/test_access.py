"""Sessions and permissions: passwords, login tokens, server_cipher, ownership, isolation."""

from __future__ import annotations

import base64
import hashlib
import time

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.onesim.conftest import SHARE, Cloud

VM = (
    'NAME = "{name}"\nCPU = "0.1"\nMEMORY = "64"\nDISK = [ IMAGE_ID = 0 ]\nNIC = [ NETWORK_ID = 0 ]'
)
AUTH = "User couldn't be authenticated, aborting call."


def cipher_session(user: str, secret: str, target: str, expiry: int, egid: int | None = None):
    """The server_cipher token, as in reference §1.5 (key and IV from sha256(secret))."""
    key = hashlib.sha256(secret.encode()).hexdigest()[:32].encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(f"{user}:{target}:{expiry}".encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    token = base64.b64encode(enc.update(data) + enc.finalize()).decode()
    middle = f"{target}:{egid}" if egid is not None else target
    return f"{user}:{middle}:{token}"


def test_bad_sessions_get_the_authentication_array(cloud: Cloud) -> None:
    for session in ("oneadmin:wrong", "nobody:x", "oneadmin", ""):
        reply = cloud.session(session).raw("one.vm.info", 0)
        assert reply == [False, f"[one.vm.info] {AUTH}", 256, -1, -1]
    # Authentication comes before parameter checks.
    assert cloud.session("x:y").raw("one.vm.info", "not-an-int")[2] == 256


def test_disabled_user_and_password_change(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw1")
    assert alice("one.user.info", -1).count("<NAME>alice</NAME>") == 1
    uid = cloud.admin("one.user.allocate", "bob", "pw", "core", [1])
    cloud.admin("one.user.enable", uid, False)
    assert cloud.session("bob:pw").raw("one.user.info", -1)[2] == 256
    cloud.admin("one.user.enable", uid, True)
    cloud.admin("one.user.passwd", uid, "pw2")
    assert cloud.session("bob:pw").raw("one.user.info", -1)[2] == 256
    assert cloud.session("bob:pw2")("one.user.info", -1)
    doc = cloud.admin("one.user.info", uid)
    assert f"<PASSWORD><![CDATA[{hashlib.sha256(b'pw2').hexdigest()}]]></PASSWORD>" in doc


def test_login_tokens(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw")
    token = alice("one.user.login", "alice", "", 60, -1)
    assert len(token) == 64
    assert cloud.session(f"alice:{token}")("one.user.info", -1)
    assert "<LOGIN_TOKEN><TOKEN>" in cloud.admin("one.user.info", 2)
    alice("one.user.login", "alice", token, 0, -1)  # revoke
    assert cloud.session(f"alice:{token}").raw("one.user.info", -1)[2] == 256
    reply = cloud.admin.error("one.user.login", "alice", "", 60, -1)
    assert "Cannot create a full token with a specific group token" in reply[1]
    admin_made = cloud.admin("one.user.login", "alice", "", 60, 1)
    assert cloud.session(f"alice:{admin_made}")("one.user.info", -1)


def test_server_cipher_impersonation(cloud: Cloud) -> None:
    cloud.user("alice", "pw")
    sim = cloud.sim
    session = cipher_session(sim.server_user, sim.server_secret, "alice", int(time.time()) + 60)
    as_alice = cloud.session(session)
    vm = as_alice("one.vm.allocate", VM.format(name="mine"))
    doc = cloud.admin("one.vm.info", vm)
    assert "<UNAME>alice</UNAME><GNAME>users</GNAME>" in doc
    assert "<ID>2</ID>" in as_alice("one.user.info", -1)
    # The stored hash is the key; the reference's known vector must decrypt too.
    with_group = cipher_session(sim.server_user, sim.server_secret, "alice", 2**31 - 1, egid=1)
    assert cloud.session(with_group)("one.vm.info", vm)


def test_server_cipher_rejects_expired_wrong_key_and_wrong_user(cloud: Cloud) -> None:
    cloud.user("alice", "pw")
    sim = cloud.sim
    future = int(time.time()) + 60
    bad = [
        cipher_session(sim.server_user, sim.server_secret, "alice", int(time.time()) - 1),
        cipher_session(sim.server_user, "not-the-secret", "alice", future),
        cipher_session(sim.server_user, sim.server_secret, "nobody", future),
        cipher_session("oneadmin", sim.server_secret, "alice", future),
        f"{sim.server_user}:alice:not-base64!",
    ]
    for session in bad:
        assert cloud.session(session).raw("one.user.info", -1)[2] == 256, session
    # serveradmin's own secret is not a password (driver server_cipher).
    assert cloud.session(f"serveradmin:{sim.server_secret}").raw("one.user.info", -1)[2] == 256


def test_isolation_between_users_in_different_groups(cloud: Cloud) -> None:
    team = cloud.admin("one.group.allocate", "team")
    alice = cloud.user("alice", "pw", group=1)
    bob = cloud.user("bob", "pw", group=team)
    # New groups join the default VDC but get no CREATE rule (oned leaves that to the
    # CLI); give it the same one as `users`.
    resources = 0x400000000 | 0x1000000000 | 0x8000000000 | 0x20000000000  # */VM+IMAGE+TEMPLATE
    rule = cloud.admin("one.acl.addrule", f"{0x200000000 | team:X}", f"{resources:X}", "8")
    assert f"<STRING>@{team} VM+IMAGE+TEMPLATE/* CREATE #0</STRING>" in cloud.admin("one.acl.info")
    assert rule > 0
    a_vm = alice("one.vm.allocate", VM.format(name="a"))
    b_vm = bob("one.vm.allocate", VM.format(name="b"))
    assert alice.raw("one.vm.info", b_vm) == [
        False,
        f"[one.vm.info] User [2] : Not authorized to perform USE VM [{b_vm}].",
        512,
        -1,
        -1,
    ]
    assert bob.raw("one.vm.action", "terminate", a_vm)[2] == 512
    assert bob.raw("one.vm.info", 4242)[2] == 1024  # missing: NO_EXISTS before AUTHORIZATION
    alice_pool = alice("one.vmpool.info", -2, -1, -1, -1)
    assert f"<ID>{a_vm}</ID>" in alice_pool and f"<ID>{b_vm}</ID>" not in alice_pool
    assert f"<ID>{a_vm}</ID>" not in bob("one.vmpool.infoextended", -2, -1, -1, -1)
    assert "<ID>2</ID>" in alice("one.userpool.info") and "<ID>3</ID>" not in alice(
        "one.userpool.info"
    )
    # Leases of VMs one cannot see are not listed.
    vn = alice("one.vn.info", 0)
    assert f"<VM><![CDATA[{a_vm}]]></VM>" in vn and f"<VM><![CDATA[{b_vm}]]></VM>" not in vn
    # Sharing with the group (GROUP_U) makes it visible to group members only.
    carol = cloud.user("carol", "pw", group=1)
    alice("one.vm.chmod", a_vm, -1, -1, -1, 1, -1, -1, -1, -1, -1)
    assert carol("one.vm.info", a_vm)
    assert bob.raw("one.vm.info", a_vm)[2] == 512
    # The oneadmin group sees everything.
    admin_pool = cloud.admin("one.vmpool.info", -2, -1, -1, -1)
    assert f"<ID>{a_vm}</ID>" in admin_pool and f"<ID>{b_vm}</ID>" in admin_pool


def test_default_rights_of_users(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw")
    reply = alice.error("one.vn.allocate", 'NAME = "n"\nVN_MAD = "dummy"\nBRIDGE = "b"', -1)
    # a network goes into a cluster: ADMIN on it is asked too, and both denials are named
    denied = "Not authorized to perform CREATE NET; Not authorized to perform ADMIN CLUSTER [0]"
    assert reply[1:3] == [f"[one.vn.allocate] User [2] : {denied}.", 512]
    assert alice.error("one.host.allocate", "h", "dummy", "dummy", -1)[2] == 512
    assert alice("one.hostpool.info") == "<HOST_POOL></HOST_POOL>"
    assert alice("one.clusterpool.info") == "<CLUSTER_POOL></CLUSTER_POOL>"
    assert "<ZONE><ID>0</ID>" in alice("one.zonepool.info")
    assert "<DATASTORE><ID>1</ID>" in alice("one.datastorepool.info")
    assert "<VNET><ID>0</ID>" in alice("one.vnpool.info", -2, -1, -1)
    template = alice("one.template.allocate", 'NAME = "mine"\nCPU = 1\nMEMORY = 64')
    image = alice("one.image.allocate", 'NAME = "mine"\nPATH = "/tmp/x"', 1)
    doc = alice("one.image.info", image)
    assert "<UID>2</UID><GID>1</GID><UNAME>alice</UNAME><GNAME>users</GNAME>" in doc
    perms = "<OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A><GROUP_U>0</GROUP_U>"
    assert perms in alice("one.template.info", template)
    # Shared objects (um-u--u--) are usable, not manageable.
    assert alice("one.template.info", 0)
    assert alice.error("one.template.update", 0, 'A = "b"', 1)[2] == 512
    assert "<OPENNEBULA_CONFIGURATION>" in alice("one.system.config")


def test_quotas(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw")
    cloud.admin("one.user.quota", 2, 'VM = [ VMS = "1", CPU = "-1", MEMORY = "-1" ]')
    alice("one.vm.allocate", VM.format(name="one"))
    reply = alice.error("one.vm.allocate", VM.format(name="two"))
    assert reply[1:3] == [
        "[one.vm.allocate] User [2] : User [2] limit of 1 reached for VMS quota in VM.",
        512,
    ]
    doc = cloud.admin("one.user.info", 2)
    assert "<VMS><![CDATA[1]]></VMS><VMS_USED><![CDATA[1]]></VMS_USED>" in doc
    assert "<CPU_USED><![CDATA[0.10]]></CPU_USED>" in doc
    cloud.admin("one.user.quota", 2, 'VM = [ VMS = "-1", MEMORY = "100" ]')
    assert "MEMORY quota" in alice.error("one.vm.allocate", VM.format(name="three"))[1]


def test_chown_and_sharing(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw")
    vm = cloud.admin("one.vm.allocate", VM.format(name="given"))
    assert alice.raw("one.vm.info", vm)[2] == 512
    cloud.admin("one.vm.chown", vm, 2, 1)
    assert "<UNAME>alice</UNAME>" in alice("one.vm.info", vm)
    assert alice.error("one.vm.chown", vm, 0, -1)[2] == 512
    image = cloud.admin("one.image.allocate", 'NAME = "private"\nPATH = "/tmp/p"', 1)
    assert alice.raw("one.image.info", image)[2] == 512
    cloud.admin("one.image.chmod", image, *SHARE)
    assert alice("one.image.info", image)


def test_minus_one_means_self_only_for_info(cloud: Cloud) -> None:
    alice = cloud.user("alice", "pw")
    assert "<NAME>alice</NAME>" in alice("one.user.info", -1)
    assert "<NAME>users</NAME>" in alice("one.group.info", -1)
    # oned 6.10 maps -1 in `info` calls only; an update of user -1 does not exist.
    assert alice.error("one.user.update", -1, 'A = "b"', 1)[1:4] == [
        "[one.user.update] Error getting user [-1].",
        1024,
        -1,
    ]


def test_pool_filter_flags(cloud: Cloud) -> None:
    team = cloud.admin("one.group.allocate", "team")
    alice = cloud.user("alice", "pw", group=1)
    carol = cloud.user("carol", "pw", group=1)
    cloud.admin("one.user.addgroup", 3, team)
    mine = alice("one.template.allocate", 'NAME = "a"\nCPU = 1\nMEMORY = 64')
    shared = carol("one.template.allocate", 'NAME = "c"\nCPU = 1\nMEMORY = 64')
    carol("one.template.chmod", shared, -1, -1, -1, 1, -1, -1, -1, -1, -1)
    private = carol("one.template.allocate", 'NAME = "p"\nCPU = 1\nMEMORY = 64')

    def ids(*args: int) -> set[int]:
        pool = alice("one.templatepool.info", *args)
        return {int(x.split("</ID>")[0]) for x in pool.split("<VMTEMPLATE><ID>")[1:]}

    assert ids(-3, -1, -1) == {mine}
    assert ids(-1, -1, -1) == {mine, shared}
    assert ids(-4, -1, -1) == {mine, shared}
    assert ids(-2, -1, -1) == {0, mine, shared}  # + the oneadmin template shared to all
    assert ids(3, -1, -1) == {shared}  # carol's, as far as alice may see
    assert private not in ids(-2, -1, -1)
