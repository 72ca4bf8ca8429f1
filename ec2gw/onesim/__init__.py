"""The embedded OpenNebula: oned 6.10's XML-RPC API on a real socket, state in SQLite.

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle
sim = EmbeddedOpenNebula(data_dir, lifecycle=Lifecycle(boot=1))
sim.start(); sim.url; sim.oneadmin_session; sim.server_user, sim.server_secret
sim.faults.unavailable("503"); sim.stop()
"""

from ec2gw.onesim.cloud import Lifecycle
from ec2gw.onesim.server import EmbeddedOpenNebula

__all__ = ["EmbeddedOpenNebula", "Lifecycle"]
