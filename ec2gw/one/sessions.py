"""server_cipher sessions: the gateway acting as each caller (reference §1.5).

The gateway authenticates the EC2 signature itself, then talks to OpenNebula as the
caller with a token encrypted under the server account's password hash, exactly as
Sunstone/FireEdge do. Tokens are reused until shortly before they expire, because every
fresh token costs oned a fork of its auth driver.
"""

from __future__ import annotations

import base64
import hashlib
import time

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def server_cipher_token(server_user: str, key_hex: str, target: str, expiry: int) -> str:
    """AES-256-CBC(`server:target:expiry`) keyed like oned's server_cipher driver."""
    key = key_hex[:32].encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(f"{server_user}:{target}:{expiry}".encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


class ServerCipherSessions:
    """Mints and caches `server_user:target:token` session strings."""

    def __init__(
        self, server_user: str, server_secret: str, *, ttl: int = 1800, renew_before: int = 300
    ) -> None:
        self.server_user = server_user
        self._key_hex = hashlib.sha256(server_secret.encode()).hexdigest()
        self._ttl = ttl
        self._renew_before = renew_before
        self._cache: dict[str, tuple[str, float]] = {}

    def for_user(self, username: str) -> str:
        """A session that makes OpenNebula run the call as `username`."""
        now = time.time()
        cached = self._cache.get(username)
        if cached and cached[1] - self._renew_before > now:
            return cached[0]
        expiry = int(now) + self._ttl
        token = server_cipher_token(self.server_user, self._key_hex, username, expiry)
        session = f"{self.server_user}:{username}:{token}"
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[username] = (session, expiry)
        return session

    @property
    def admin(self) -> str:
        """The server account acting as itself (it is in the oneadmin group)."""
        return self.for_user(self.server_user)
