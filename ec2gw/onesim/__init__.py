"""The embedded OpenNebula: oned 6.10's XML-RPC API on a real socket, state in SQLite.

    from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
    sim = EmbeddedOpenNebula(data_dir, lifecycle=Lifecycle(boot=1))
    sim.start()   # sim.url, sim.oneadmin_session, sim.server_user, sim.server_secret
    sim.faults.unavailable("503"); sim.faults.clear()
    sim.stop()

Layout: `server` (HTTP, fault injection hooks, the public class), `api/` (one module per
object kind: arguments, checks, messages), `cloud` (pools, authentication, lifecycle engine,
scheduler), `documents` (the XML bodies), `template` (template syntax), `acl` (permissions
and the bootstrap ACL rules), `rpc` (reply marshalling), `store` (SQLite), `dummy` (what the
dummy drivers report, oned's configuration document).

Known simplifications, chosen on purpose: one zone, no raft/federation; no object locks
(`one.*.lock`), VM snapshots, migrations, backups, marketplaces, VM groups or virtual
routers; only the bootstrap ACL rules plus `one.acl.addrule` (no VDC objects); the dummy
drivers always succeed; VNC ports are 5900 + VM id.
"""

from ec2gw.onesim.cloud import Lifecycle
from ec2gw.onesim.server import EmbeddedOpenNebula

__all__ = ["EmbeddedOpenNebula", "Lifecycle"]
