"""The client conformance suite runs on the live gateway of the end-to-end tests.

Each scenario works as its own OpenNebula user (`gateway.new_user`), so what a client
lists — instances, key pairs, tags — is exactly what that scenario made.
"""

from tests.e2e.conftest import LiveGateway, gateway  # noqa: F401  (the session fixture)
