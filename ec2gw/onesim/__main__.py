"""`python -m ec2gw.onesim --port 2633 --data-dir DIR`: run the embedded OpenNebula alone."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ec2gw.onesim import EmbeddedOpenNebula, Lifecycle


def run_forever(data_dir: Path, host: str, port: int, lifecycle: Lifecycle) -> None:
    """Serve until SIGINT/SIGTERM; prints the URL and where the credentials are."""
    sim = EmbeddedOpenNebula(Path(data_dir), host=host, port=port, lifecycle=lifecycle)
    sim.start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"OpenNebula XML-RPC endpoint: {sim.url}", flush=True)
    print(f"oneadmin credentials:        {sim.oneadmin_auth_file}", flush=True)
    print(f"serveradmin credentials:     {sim.serveradmin_auth_file}", flush=True)
    try:
        done.wait()
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ec2gw.onesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2633)
    parser.add_argument("--data-dir", type=Path, required=True)
    for step in ("schedule", "prolog", "boot", "shutdown", "epilog", "image"):
        parser.add_argument(f"--{step}-delay", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    lifecycle = Lifecycle(
        schedule=args.schedule_delay,
        prolog=args.prolog_delay,
        boot=args.boot_delay,
        shutdown=args.shutdown_delay,
        epilog=args.epilog_delay,
        image=args.image_delay,
    )
    run_forever(args.data_dir, args.host, args.port, lifecycle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
