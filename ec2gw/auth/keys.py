"""EC2 access keys, kept on the OpenNebula user they belong to.

The gateway stays stateless: each key is a vector attribute of its own on the user's
TEMPLATE, `EC2_ACCESS_KEY_<key id> = [ ID, SECRET, CREATED, STATUS ]` (`documents.ACCESS_KEYS`:
oned keeps user templates in replace mode, one attribute per name, so keys sharing one name
would revoke each other), with SECRET encrypted (AES-GCM, the key id as associated data)
under a key only the gateway holds, so neither the user nor an OpenNebula admin reading the
template learns the secret. A key is added with a merge update, so concurrent creations
keep each other; keys written by earlier versions as repeated `EC2_ACCESS_KEY` vectors are
still read and deleted. The key id embeds the owner's uid, so a lookup is one
`one.user.info` call, never a scan of the user pool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ec2gw.ec2.cache import TTLCache
from ec2gw.one import documents
from ec2gw.one.client import OneClient
from ec2gw.one.errors import NO_EXISTS, OneError
from ec2gw.one.sessions import ServerCipherSessions

KEY_PREFIX = "AKIA"
KEYS = documents.ACCESS_KEYS


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    uid: int
    username: str
    created: int
    status: str = "Active"
    secret: str | None = None  # only when just created or looked up for verification


def new_access_key_id(uid: int) -> str:
    """`AKIA` + base32(uid as 4 bytes + 6 random bytes): 20 characters like AWS's."""
    raw = uid.to_bytes(4, "big") + os.urandom(6)
    return KEY_PREFIX + base64.b32encode(raw).decode()


def uid_of(access_key_id: str) -> int | None:
    """The owner's uid encoded in a key id, or None if it is not one of ours."""
    if len(access_key_id) != 20 or not access_key_id.startswith(KEY_PREFIX):
        return None
    try:
        raw = base64.b32decode(access_key_id[4:])
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw[:4], "big")


def new_secret() -> str:
    """40 characters of base64, like an AWS secret access key."""
    return base64.b64encode(secrets.token_bytes(30)).decode()


class KeyCipher:
    """Encrypts secrets at rest on OpenNebula with a key derived from the gateway's."""

    def __init__(self, key_material: str) -> None:
        if not key_material:
            raise ValueError("a key encryption key is required")
        digest = hashlib.sha256(b"ec2gw-access-key-v1\0" + key_material.encode()).digest()
        self._aead = AESGCM(digest)

    def encrypt(self, secret: str, access_key_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), access_key_id.encode())
        return "v1:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str, access_key_id: str) -> str | None:
        if not stored.startswith("v1:"):
            return None
        try:
            blob = base64.b64decode(stored[3:], validate=True)
            return self._aead.decrypt(blob[:12], blob[12:], access_key_id.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            return None


class UnknownUser(LookupError):
    pass


class KeyStore:
    """Create, list, delete and look up access keys through OpenNebula."""

    def __init__(
        self,
        one: OneClient,
        sessions: ServerCipherSessions,
        cipher: KeyCipher,
        *,
        cache_seconds: float = 5.0,
        cache_size: int = 4096,
    ) -> None:
        self._one = one
        self._sessions = sessions
        self._cipher = cipher
        self._cache: TTLCache[AccessKey | None] = TTLCache(cache_seconds, cache_size)

    async def _user(self, uid: int) -> documents.Element | None:
        try:
            xml = await self._one.call(self._sessions.admin, "one.user.info", uid)
        except OneError as err:
            if err.code == NO_EXISTS:
                return None
            raise
        return documents.parse(xml)

    async def resolve_user(self, user: str) -> int:
        """A user name or numeric id → uid."""
        pool = documents.parse(await self._one.call(self._sessions.admin, "one.userpool.info"))
        for element in pool.iterfind("USER"):
            if user in (documents.text(element, "NAME"), documents.text(element, "ID")):
                return documents.integer(element, "ID")
        raise UnknownUser(user)

    def _keys_of(self, user: documents.Element) -> list[AccessKey]:
        uid = documents.integer(user, "ID")
        name = documents.text(user, "NAME")
        return [
            AccessKey(
                access_key_id=documents.text(vector, "ID"),
                uid=uid,
                username=name,
                created=documents.integer(vector, "CREATED"),
                status=documents.text(vector, "STATUS", "Active"),
            )
            for vector in KEYS.read(user.find("TEMPLATE")).values()
        ]

    async def lookup(self, access_key_id: str) -> AccessKey | None:
        """The key with its secret, if it exists, is active and its user is enabled.

        Answers are cached for a few seconds (bounded), so a deleted key or a disabled
        user stops working within `cache_seconds`; concurrent lookups of a key that is not
        cached share one call to OpenNebula.
        """
        return await self._cache.get(access_key_id, lambda: self._lookup_uncached(access_key_id))

    async def _lookup_uncached(self, access_key_id: str) -> AccessKey | None:
        uid = uid_of(access_key_id)
        if uid is None:
            return None
        user = await self._user(uid)
        if user is None or documents.text(user, "ENABLED") != "1":
            return None
        vector = KEYS.read(user.find("TEMPLATE")).get(access_key_id)
        if vector is not None:
            if documents.text(vector, "STATUS", "Active") != "Active":
                return None
            secret = self._cipher.decrypt(documents.text(vector, "SECRET"), access_key_id)
            if secret is None:
                return None
            return AccessKey(
                access_key_id=access_key_id,
                uid=uid,
                username=documents.text(user, "NAME"),
                created=documents.integer(vector, "CREATED"),
                secret=secret,
            )
        return None

    async def create(self, user: str) -> AccessKey:
        uid = await self.resolve_user(user)
        element = await self._user(uid)
        if element is None:
            raise UnknownUser(user)
        key_id, secret, created = new_access_key_id(uid), new_secret(), int(time.time())
        vector = {
            "CREATED": str(created),
            "ID": key_id,
            "SECRET": self._cipher.encrypt(secret, key_id),
            "STATUS": "Active",
        }
        await self._update(uid, KEYS.added([vector]), merge=True)
        self._cache.discard(key_id)
        return AccessKey(key_id, uid, documents.text(element, "NAME"), created, secret=secret)

    async def list(self, user: str | None = None) -> list[AccessKey]:
        if user is not None:
            element = await self._user(await self.resolve_user(user))
            return self._keys_of(element) if element is not None else []
        pool = documents.parse(await self._one.call(self._sessions.admin, "one.userpool.info"))
        return [key for element in pool.iterfind("USER") for key in self._keys_of(element)]

    async def delete(self, access_key_id: str) -> bool:
        uid = uid_of(access_key_id)
        element = await self._user(uid) if uid is not None else None
        if element is None:
            return False
        template = element.find("TEMPLATE")
        if access_key_id not in KEYS.read(template):
            return False
        await self._update(uid, KEYS.without(template, [access_key_id]), merge=False)
        self._cache.discard(access_key_id)
        return True

    async def _update(self, uid: int, template: str, *, merge: bool) -> None:
        await self._one.call(
            self._sessions.admin, "one.user.update", uid, template, 1 if merge else 0
        )
