"""The embedded OpenNebula's HTTP side: an XML-RPC endpoint at `/RPC2` on a real socket.

HTTP/1.1 with keep-alive (clients such as httpx reuse one connection), `Content-Type:
text/xml`, one thread per connection; every call is serialized by the cloud's lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ec2gw.onesim import rpc
from ec2gw.onesim.api import dispatch
from ec2gw.onesim.cloud import Cloud, Lifecycle
from ec2gw.onesim.faults import Faults

log = logging.getLogger("ec2gw.onesim")

TICK = 0.05  # seconds between lifecycle checks when something is due


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    sim: EmbeddedOpenNebula


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Xmlrpc-c_Abyss/1.51"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every reply on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._reply(405, b"Method Not Allowed\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        sim = self.server.sim
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_sim/faults":
            try:
                sim.faults.apply_json(json.loads(body or b"{}"))
            except (ValueError, KeyError, TypeError) as err:
                self._reply(400, json.dumps({"error": str(err)}).encode(), "application/json")
                return
            self._reply(200, b'{"ok": true}', "application/json")
            return
        mode = sim.faults.mode
        if mode in ("close", "refuse"):
            self.close_connection = True
            return
        if mode == "503":
            self._reply(503, b"Service Unavailable\n", "text/plain")
            return
        if self.path.rstrip("/") != "/RPC2":
            self._reply(404, b"Not Found\n", "text/plain")
            return
        self._reply(200, sim.handle(body))


class EmbeddedOpenNebula:
    """An OpenNebula (oned 6.10 XML-RPC API) in this process, state in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        lifecycle: Lifecycle = Lifecycle(),  # noqa: B008 - frozen, shared safely
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.lifecycle = lifecycle
        self.faults = Faults()
        self.faults.on_change = self._faults_changed
        self.cloud: Cloud | None = None
        self._httpd: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listen_lock = threading.Lock()
        self._relisten_timer: threading.Timer | None = None

    # --- public interface ---------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/RPC2"

    @property
    def oneadmin_session(self) -> str:
        return f"oneadmin:{self._cloud.oneadmin_password}"

    @property
    def server_user(self) -> str:
        return "serveradmin"

    @property
    def server_secret(self) -> str:
        return self._cloud.server_secret

    @property
    def oneadmin_auth_file(self) -> Path:
        return self.data_dir / "one_auth"

    @property
    def serveradmin_auth_file(self) -> Path:
        return self.data_dir / "serveradmin_auth"

    def start(self) -> None:
        """Listen, load or bootstrap the state, serve in background threads."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._listen()
        self.cloud = Cloud(self.data_dir, self.lifecycle, self.url)
        self._write_auth_files()
        ticker = threading.Thread(target=self._tick, name="onesim-ticker", daemon=True)
        ticker.start()
        self._threads.append(ticker)

    def stop(self) -> None:
        self._stopping.set()
        if self._relisten_timer is not None:
            self._relisten_timer.cancel()
        self._unlisten()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self.cloud is not None:
            with self.cloud.lock:
                self.cloud.flush()
                self.cloud.store.close()
            self.cloud = None

    def __enter__(self) -> EmbeddedOpenNebula:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling ---------------------------------------------------------------

    def handle(self, body: bytes) -> bytes:
        """One XML-RPC call to its reply (faults first, then the method)."""
        method = "?"
        try:
            call = rpc.decode_call(body)
            method = call.method
            delay = self.faults.delay_for(call.method)
            if delay:
                time.sleep(delay)
            failure = self.faults.failure_for(call.method)
            if failure is not None:
                raise rpc.OneError(failure.code, f"[{call.method}] {failure.message}")
            return rpc.success(dispatch(self._cloud, call.method, call.params))
        except rpc.OneError as err:
            return rpc.failure(err)
        except rpc.RpcFault as err:
            return rpc.fault(err)
        except Exception:  # noqa: BLE001 - oned answers INTERNAL rather than dying
            log.exception("onesim: internal error")
            return rpc.failure(rpc.OneError(rpc.INTERNAL, f"[{method}] Internal error"))

    # --- internals ----------------------------------------------------------------------

    @property
    def _cloud(self) -> Cloud:
        if self.cloud is None:
            raise RuntimeError("EmbeddedOpenNebula is not started")
        return self.cloud

    def _listen(self) -> None:
        with self._listen_lock:
            if self._httpd is not None:
                return
            httpd = _Server((self.host, self.port), _Handler)
            httpd.sim = self
            self.port = httpd.server_address[1]
            self._httpd = httpd
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="onesim-http",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _unlisten(self) -> None:
        with self._listen_lock:
            httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def _faults_changed(self) -> None:
        """`refuse` really stops listening; any other mode listens (again)."""
        if self._stopping.is_set() or self.cloud is None:
            return
        if self._relisten_timer is not None:
            self._relisten_timer.cancel()
            self._relisten_timer = None
        if self.faults.mode == "refuse":
            # Safe from a handler thread: serve_forever runs in its own thread.
            self._unlisten()
            until = self.faults.until()
            if until is not None:
                self._relisten_timer = threading.Timer(
                    max(until - time.monotonic(), 0), self.faults.available
                )
                self._relisten_timer.daemon = True
                self._relisten_timer.start()
        else:
            for _ in range(50):
                try:
                    self._listen()
                    return
                except OSError:  # the old socket is still closing
                    time.sleep(0.02)

    def _tick(self) -> None:
        """Move timed lifecycle steps on, even when nobody calls."""
        while not self._stopping.wait(TICK):
            cloud = self.cloud
            if cloud is None:
                continue
            with cloud.lock:
                due = cloud.next_due()
                if due is not None and due <= time.time():
                    cloud.advance()
                    cloud.flush()

    def _write_auth_files(self) -> None:
        for path, text in (
            (self.oneadmin_auth_file, self.oneadmin_session),
            (self.serveradmin_auth_file, f"{self.server_user}:{self.server_secret}"),
        ):
            path.write_text(text + "\n")
            os.chmod(path, 0o600)
