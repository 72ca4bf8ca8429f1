"""Key pairs live on the caller's OpenNebula user, one vector attribute per key pair:

`EC2_KEY_PAIR_<digest of the name> = [ CREATED, FINGERPRINT, ID, NAME, PUBLIC_KEY,
TAGS (JSON), TYPE ]` (`documents.KEY_PAIRS`). oned keeps user templates in replace mode, one
attribute per name, so pairs sharing one name would collapse to the last. A pair is added
(or its tags changed) with a merge update of its attribute alone; a deletion writes back
the template read just before. Pairs written by earlier versions as repeated `EC2_KEY_PAIR`
vectors are still read and deleted.

The public key reaches a VM through CONTEXT/SSH_PUBLIC_KEY at launch. The private key of a
created pair is returned once and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ec2gw.actions.context import RequestContext, finish_dry_run
from ec2gw.actions.registry import action
from ec2gw.ec2 import filters, tags
from ec2gw.one import documents
from ec2gw.protocol.errors import EC2Error, invalid_value, missing_parameter

PAIRS = documents.KEY_PAIRS
MAX_NAME = 255


def _not_found(names: list[str] | str) -> EC2Error:
    shown = names if isinstance(names, str) else ", ".join(names)
    return EC2Error("InvalidKeyPair.NotFound", f"The key pair '{shown}' does not exist")


async def _user(ctx: RequestContext) -> documents.Element:
    return await ctx.one_doc("one.user.info", -1)


def vectors(user: documents.Element) -> list[documents.Element]:
    """The user's key pair vectors (both forms), by name."""
    pairs = PAIRS.read(user.find("TEMPLATE"))
    return [pairs[name] for name in sorted(pairs)]


def pair_tags(vector: documents.Element) -> dict[str, str]:
    try:
        found = json.loads(documents.text(vector, "TAGS") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _pairs(user: documents.Element) -> list[dict[str, Any]]:
    return [
        {
            "KeyPairId": documents.text(vector, "ID"),
            "KeyName": documents.text(vector, "NAME"),
            "KeyFingerprint": documents.text(vector, "FINGERPRINT"),
            "KeyType": documents.text(vector, "TYPE", "rsa"),
            "PublicKey": documents.text(vector, "PUBLIC_KEY"),
            "CreateTime": datetime.fromtimestamp(documents.integer(vector, "CREATED"), UTC),
            "Tags": [{"Key": k, "Value": v} for k, v in pair_tags(vector).items()],
        }
        for vector in vectors(user)
    ]


async def public_key_of(ctx: RequestContext, name: str) -> str:
    """The public key of the caller's key pair `name` (for CONTEXT/SSH_PUBLIC_KEY)."""
    for pair in _pairs(await _user(ctx)):
        if pair["KeyName"] == name:
            return pair["PublicKey"]
    raise _not_found(name)


async def _add(ctx: RequestContext, vector: dict[str, str]) -> None:
    """Write one pair's attribute, merged into the caller's TEMPLATE."""
    await ctx.one("one.user.update", ctx.uid, PAIRS.added([vector]), 1)


async def write_pair_tags(
    ctx: RequestContext, vector: documents.Element, new_tags: dict[str, str]
) -> None:
    """Replace the tags of the caller's pair `vector` (one read just before)."""
    values = {child.tag: child.text or "" for child in vector}
    await _add(ctx, {**values, "TAGS": json.dumps(new_tags)})


def _check_name(name: str | None) -> str:
    if not name:
        raise missing_parameter("KeyName")
    if len(name) > MAX_NAME or not name.isascii() or not name.isprintable():
        raise invalid_value("KeyName", name[:64], "Key names are up to 255 ASCII characters.")
    return name


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big")
    return _ssh_string(raw)


def _ppk(private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, comment: str) -> str:
    """PuTTY private key file, format 3, unencrypted (the MAC key is then empty)."""
    public_blob = base64.b64decode(
        private_key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .split()[1]
    )
    if isinstance(private_key, rsa.RSAPrivateKey):
        algorithm = "ssh-rsa"
        numbers = private_key.private_numbers()
        private_blob = (
            _mpint(numbers.d) + _mpint(numbers.p) + _mpint(numbers.q) + _mpint(numbers.iqmp)
        )
    else:
        algorithm = "ssh-ed25519"
        raw = private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        private_blob = _ssh_string(raw)
    mac_data = b"".join(
        _ssh_string(part)
        for part in (algorithm.encode(), b"none", comment.encode(), public_blob, private_blob)
    )
    mac = hmac.new(b"", mac_data, hashlib.sha256).hexdigest()

    def lines(blob: bytes) -> list[str]:
        text = base64.b64encode(blob).decode()
        return [text[i : i + 64] for i in range(0, len(text), 64)]

    public_lines, private_lines = lines(public_blob), lines(private_blob)
    return "\n".join(
        [
            f"PuTTY-User-Key-File-3: {algorithm}",
            "Encryption: none",
            f"Comment: {comment}",
            f"Public-Lines: {len(public_lines)}",
            *public_lines,
            f"Private-Lines: {len(private_lines)}",
            *private_lines,
            f"Private-MAC: {mac}",
            "",
        ]
    )


def _openssh_public(key: Any, name: str) -> str:
    text = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{text.decode()} {name}"


def _ed25519_fingerprint(public_key: ed25519.Ed25519PublicKey) -> str:
    blob = base64.b64decode(
        public_key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).split()[1]
    )
    return base64.b64encode(hashlib.sha256(blob).digest()).decode()


def _new_pair_id() -> str:
    return "key-" + secrets.token_hex(9)[:17]


async def _store(ctx: RequestContext, pair: dict[str, Any], pair_tags: dict[str, str]) -> None:
    await _add(
        ctx,
        {
            "CREATED": str(int(time.time())),
            "FINGERPRINT": pair["KeyFingerprint"],
            "ID": pair["KeyPairId"],
            "NAME": pair["KeyName"],
            "PUBLIC_KEY": pair["PublicKey"],
            "TAGS": json.dumps(pair_tags),
            "TYPE": pair["KeyType"],
        },
    )


async def _prepare(ctx: RequestContext, params: dict[str, Any]) -> tuple:
    name = _check_name(params.get("KeyName"))
    pair_tags = tags.from_specifications(params.get("TagSpecifications"), "key-pair")
    user = await _user(ctx)
    if any(p["KeyName"] == name for p in _pairs(user)):
        raise EC2Error("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
    finish_dry_run(params)
    return name, pair_tags


@action(
    "CreateKeyPair",
    opennebula="one.user.update (merge) of the caller: an EC2_KEY_PAIR_<digest of the name> "
    "vector on the user",
    oned="user templates are in replace mode: one EC2_KEY_PAIR_<digest> vector per pair, merged "
    "in (append=1); the duplicate-name check reads first (not atomic)",
)
async def create_key_pair(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    key_type = params.get("KeyType") or "rsa"
    key_format = params.get("KeyFormat") or "pem"
    if key_type not in ("rsa", "ed25519"):
        raise invalid_value("KeyType", key_type)
    if key_format not in ("pem", "ppk"):
        raise invalid_value("KeyFormat", key_format)
    name, pair_tags = await _prepare(ctx, params)
    if key_type == "rsa":
        private_key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs8 = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fingerprint = _colon_hex(hashlib.sha1(pkcs8).digest())  # noqa: S324 - EC2's format
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
        fingerprint = _ed25519_fingerprint(private_key.public_key())
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    material = _ppk(private_key, name) if key_format == "ppk" else pem.decode().rstrip("\n")
    pair = {
        "KeyPairId": _new_pair_id(),
        "KeyName": name,
        "KeyFingerprint": fingerprint,
        "KeyType": key_type,
        "PublicKey": _openssh_public(private_key.public_key(), name),
    }
    await _store(ctx, pair, pair_tags)
    return {
        "KeyName": name,
        "KeyFingerprint": fingerprint,
        "KeyMaterial": material,
        "KeyPairId": pair["KeyPairId"],
        "Tags": [{"Key": k, "Value": v} for k, v in pair_tags.items()],
    }


def _load_public_key(material: bytes) -> Any:
    text = material.strip()
    loaders = (
        serialization.load_ssh_public_key,
        serialization.load_pem_public_key,
        serialization.load_der_public_key,
    )
    for loader in loaders:
        try:
            return loader(text)
        except (ValueError, UnsupportedAlgorithm, TypeError):
            continue
    if text.startswith(b"---- BEGIN SSH2 PUBLIC KEY ----"):
        body = [
            line
            for line in text.decode(errors="replace").splitlines()[1:-1]
            if ":" not in line and not line.startswith(" ")
        ]
        blob = base64.b64decode("".join(body) + "==", validate=False)
        algorithm = blob[4 : 4 + struct.unpack(">I", blob[:4])[0]]
        try:
            return serialization.load_ssh_public_key(algorithm + b" " + base64.b64encode(blob))
        except (ValueError, UnsupportedAlgorithm):
            pass
    raise EC2Error("InvalidKey.Format", "Key is not in valid OpenSSH public key format")


@action(
    "ImportKeyPair",
    opennebula="one.user.update (merge) of the caller: an EC2_KEY_PAIR_<digest of the name> "
    "vector on the user",
    oned="user templates are in replace mode: one EC2_KEY_PAIR_<digest> vector per pair, merged "
    "in (append=1); the duplicate-name check reads first (not atomic)",
)
async def import_key_pair(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    material = params.get("PublicKeyMaterial")
    if not material:
        raise missing_parameter("PublicKeyMaterial")
    public_key = _load_public_key(material)
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 1024:
            raise EC2Error("InvalidKey.Format", "RSA keys must be at least 1024 bits")
        der = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fingerprint = _colon_hex(hashlib.md5(der).digest())  # noqa: S324 - EC2's format
        key_type = "rsa"
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        fingerprint = _ed25519_fingerprint(public_key)
        key_type = "ed25519"
    else:
        raise EC2Error("InvalidKey.Format", "Only RSA and ED25519 keys are supported")
    name, pair_tags = await _prepare(ctx, params)
    pair = {
        "KeyPairId": _new_pair_id(),
        "KeyName": name,
        "KeyFingerprint": fingerprint,
        "KeyType": key_type,
        "PublicKey": _openssh_public(public_key, name),
    }
    await _store(ctx, pair, pair_tags)
    return {
        "KeyName": name,
        "KeyFingerprint": fingerprint,
        "KeyPairId": pair["KeyPairId"],
        "Tags": [{"Key": k, "Value": v} for k, v in pair_tags.items()],
    }


def _tags(pair: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in pair["Tags"]}


KEY_PAIR_FILTERS: dict[str, filters.Extractor] = {
    "key-pair-id": lambda p: p["KeyPairId"],
    "fingerprint": lambda p: p["KeyFingerprint"],
    "key-name": lambda p: p["KeyName"],
    "key-type": lambda p: p["KeyType"],
}


@action(
    "DescribeKeyPairs",
    opennebula="one.user.info(-1): the user's EC2_KEY_PAIR_* (and older EC2_KEY_PAIR) vectors",
)
async def describe_key_pairs(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    pairs = _pairs(await _user(ctx))
    finish_dry_run(params)
    for key, field in (("KeyNames", "KeyName"), ("KeyPairIds", "KeyPairId")):
        wanted = params.get(key)
        if wanted:
            known = {p[field] for p in pairs}
            missing = [w for w in wanted if w not in known]
            if missing:
                if key == "KeyPairIds":
                    raise EC2Error(
                        "InvalidKeyPair.NotFound",
                        f"The key pair ID '{', '.join(missing)}' does not exist",
                    )
                raise _not_found(missing)
            pairs = [p for p in pairs if p[field] in wanted]
    pairs = filters.apply(pairs, params.get("Filters"), KEY_PAIR_FILTERS, _tags)
    if not params.get("IncludePublicKey"):
        pairs = [{**p, "PublicKey": None} for p in pairs]
    return {"KeyPairs": sorted(pairs, key=lambda p: p["KeyName"])}


@action(
    "DeleteKeyPair",
    opennebula="one.user.update of the caller's template without that key pair's vector",
    oned="the user template (replace mode) written back as read, without the pair's vector "
    "(append=0): anything merged in between is lost",
)
async def delete_key_pair(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name, pair_id = params.get("KeyName"), params.get("KeyPairId")
    if not name and not pair_id:
        raise missing_parameter("KeyName")
    user = await _user(ctx)
    finish_dry_run(params)
    doomed = [
        vector
        for vector in vectors(user)
        if (name and documents.text(vector, "NAME") == name)
        or (pair_id and documents.text(vector, "ID") == pair_id)
    ]
    if not doomed:
        if pair_id:
            raise EC2Error("InvalidKeyPair.NotFound", f"The key pair ID '{pair_id}' does not exist")
        return {"Return": True}  # EC2 answers success for an unknown key name
    template = user.find("TEMPLATE")
    names = [documents.text(vector, "NAME") for vector in doomed]
    await ctx.one("one.user.update", ctx.uid, PAIRS.without(template, names), 0)
    return {
        "Return": True,
        "KeyPairId": documents.text(doomed[0], "ID"),
    }
