"""Replies reduced to what must be equal on oned and on the embedded OpenNebula.

A reply becomes a list of comparable lines. Failures: the success flag, the error code,
whether an object id is given, and the message with digits replaced by `N`. Successes with
a number: its type. Documents: one line per leaf, `path kind[ cdata] [= value]`, in
document order, where the value is kept except for leaves that differ from one cloud to
the other by nature (ids, times, monitoring, capacity). Inside TEMPLATE / USER_TEMPLATE
every attribute is compared by value, with numbers replaced by `N` for attributes that
hold object ids (but the default security group `0` kept). Pools keep only the items this
run made (their NAME carries the run's token, or their id is one the run got back), so
other objects on a shared oned do not matter. The run's token is replaced by `<run>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"<!\[CDATA\[(.*?)\]\]>|<(/?)([A-Za-z_0-9]+)(/?)>|([^<]+)", re.S)
_DIGITS = re.compile(r"\d+")

# Leaves whose value differs between clouds by nature: only their type is compared (VM and
# VNET: the owner of a lease, an id).
VOLATILE = re.compile(
    r"^(ID|UID|GID|OID|HID|CID|VMID|SEQ|REQUEST_ID|DEPLOY_ID|UUID|LAST_POLL|HOSTNAME|"
    r".*TIME|TIMESTAMP|PORT|VNC_PORTS|CLONING_ID|TARGET_SNAPSHOT|"
    r"(TOTAL|FREE|USED|MAX|RUNNING|ALLOCATED)_(CPU|MEM|DISK|MB|VMS)|TOTAL_MB|FREE_MB|USED_MB|"
    r"CPU_USAGE|MEM_USAGE|DISK_USAGE|RUNNING_VMS|TOKEN_PASSWORD|PASSWORD|AUTH_DRIVER_?.*|"
    r"SCHED_MESSAGE|ERROR|.*_QUOTA_USED|.*_USED|VM|VNET)$"
)
# Subtrees that are all monitoring or capacity: kept as one line each.
OPAQUE = re.compile(r"(^|/)(MONITORING|HOST_SHARE|MONITORING_RECORDS|SNAPSHOTS|LOGIN_TOKEN)$")
# Ids that are the same on both clouds: positions inside one object.
STABLE_IDS = {"DISK_ID", "NIC_ID", "AR_ID", "SAVED_DISK_ID", "PARENT_NETWORK_AR_ID"}
TEMPLATE_ROOTS = {"TEMPLATE", "USER_TEMPLATE"}
# Template attributes whose value is the cloud's own: secrets, its endpoint.
TEMPLATE_VOLATILE = {"TOKEN_PASSWORD", "ENDPOINT", "UUID"}
# Template attributes that hold object ids or things made from them.
ID_ATTRS = re.compile(
    r"^(.*_ID|ID|VMID|TARGET|MAC|DEPLOY_ID|.*_UID|.*_GID|.*_IDS|SECURITY_GROUPS|SOURCE|"
    r"AUTOMATIC_.*REQUIREMENTS|CLUSTER_ID|PORT|UUID|.*TIME|DISK_ID)$"
)
POOL_ROOTS = {
    "VM_POOL",
    "IMAGE_POOL",
    "VMTEMPLATE_POOL",
    "VNET_POOL",
    "USER_POOL",
    "HOST_POOL",
    "CLUSTER_POOL",
    "DATASTORE_POOL",
    "SECURITY_GROUP_POOL",
    "ZONE_POOL",
    "GROUP_POOL",
    "ACL_POOL",
}


@dataclass
class Node:
    tag: str
    children: list[Node] = field(default_factory=list)
    text: str = ""
    cdata: bool = False
    leaf: bool = True


def parse(xml: str) -> Node:
    """A tolerant tree of oned's XML (CDATA kept apart from text)."""
    root = Node("#root", leaf=False)
    stack = [root]
    for m in _TOKEN.finditer(xml.strip()):
        cdata, closing, tag, selfclose, text = m.groups()
        if tag is None:
            if text is not None and text.startswith("<?"):
                continue
            stack[-1].text += cdata if cdata is not None else (text or "")
            stack[-1].cdata = stack[-1].cdata or cdata is not None
            continue
        if closing:
            stack.pop()
            continue
        node = Node(tag)
        stack[-1].children.append(node)
        stack[-1].leaf = False
        if not selfclose:
            stack.append(node)
    return root.children[0] if root.children else Node("#empty")


def kind(text: str) -> str:
    if text == "":
        return "empty"
    if re.fullmatch(r"-?\d+", text):
        return "int"
    if re.fullmatch(r"-?\d+\.\d+", text):
        return "float"
    return "text"


@dataclass
class Run:
    """What identifies one run's objects on one cloud."""

    token: str
    ids: dict[str, set[int]] = field(default_factory=dict)  # pool root -> ids made
    user_id: int = -1

    def made(self, pool: str, oid: int) -> None:
        self.ids.setdefault(pool, set()).add(oid)

    def text(self, value: str) -> str:
        return value.replace(self.token, "<run>") if self.token else value


def _ours(item: Node, pool: str, run: Run) -> bool:
    fields = {c.tag: c.text for c in item.children if c.leaf}
    if run.token and run.token in fields.get("NAME", ""):
        return True
    oid = fields.get("ID", "")
    return oid.lstrip("-").isdigit() and int(oid) in run.ids.get(pool, set())


def _template_value(name: str, value: str) -> str:
    if name in TEMPLATE_VOLATILE:
        return "(volatile)"
    if name == "SECURITY_GROUPS":
        return ",".join(v if v == "0" else "N" for v in value.split(","))
    if ID_ATTRS.match(name) and name not in STABLE_IDS:
        return _DIGITS.sub("N", value)
    return value


# Lists of the VMs (or images...) using an object: only comparable on the run's objects.
ID_LISTS = {
    "VMS",
    "UPDATED_VMS",
    "OUTDATED_VMS",
    "UPDATING_VMS",
    "ERROR_VMS",
    "IMAGES",
    "CLONES",
    "HOSTS",
    "DATASTORES",
    "VNETS",
    "USERS",
    "ADMINS",
}


def lines(
    node: Node, run: Run, path: str = "", in_template: bool = False, shared: bool = False
) -> list[str]:
    here = f"{path}/{node.tag}" if path else node.tag
    if (OPAQUE.search(here) or (shared and node.tag in ID_LISTS)) and not in_template:
        return [f"{here} (opaque)"]
    if not node.leaf or (not path and node.tag in POOL_ROOTS):
        out: list[str] = []
        children = node.children
        if not path and node.tag in POOL_ROOTS:
            children = [c for c in children if _ours(c, node.tag, run)]
        inside = in_template or node.tag in TEMPLATE_ROOTS
        if (not path and node.tag not in POOL_ROOTS) or path in POOL_ROOTS:
            # an object: are its VM / image lists this run's to compare?
            shared = not _ours(node, path or f"{node.tag}_POOL", run)
        for child in children:
            out += lines(child, run, here, inside, shared)
        return out + [f"{here} end"]
    text = run.text(node.text)
    head = f"{here} {kind(node.text)}{' cdata' if node.cdata else ''}"
    if in_template:
        return [f"{head} = {_template_value(node.tag, text)}"]
    if node.tag == "USER" and path.endswith("ACL"):
        return [f"{here} hex"]  # the user's id, in hex
    if node.tag == "STRING" and path.endswith("ACL"):
        text = re.sub(rf"#{run.user_id}\b", "#<user>", text) if run.user_id >= 0 else text
        return [f"{head} = {text}"]
    if VOLATILE.match(node.tag) or (node.tag.endswith("_ID") and node.tag not in STABLE_IDS):
        return [head]
    return [f"{head} = {text}"]


def reply_lines(reply: object, run: Run) -> list[str]:
    """The comparable form of one XML-RPC reply (a fault is a dict)."""
    if isinstance(reply, dict):  # xmlrpc.client.Fault as a dict
        return [f"fault {reply.get('faultCode')} {_DIGITS.sub('N', reply.get('faultString', ''))}"]
    assert isinstance(reply, list), reply
    if reply[0] is False:
        message = _DIGITS.sub("N", run.text(str(reply[1])))
        has_id = len(reply) > 3 and reply[3] != -1
        return [f"failure code={reply[2]} id={'yes' if has_id else 'no'}", f"message {message}"]
    value = reply[1]
    if isinstance(value, bool):
        return [f"success bool {value}"]
    if isinstance(value, int):
        return ["success int"]
    if isinstance(value, str) and value.lstrip().startswith("<"):
        return ["success document", *lines(parse(value), run)]
    return [f"success {type(value).__name__} {run.text(str(value))}"]


def differences(oned: list[str], sim: list[str]) -> list[str]:
    """A readable diff: the first lines that differ, with some context."""
    if oned == sim:
        return []
    import difflib

    diff = difflib.unified_diff(oned, sim, "oned", "onesim", n=2, lineterm="")
    return list(diff)[:60]
