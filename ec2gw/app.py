"""The HTTP front: one route, one error envelope, one log line per request.

The path of a request: read the body (bounded) → merge query and form parameters →
verify the signature → find the action in botocore's model and in our registry → parse
the parameters by the model → run the handler as the caller → serialize by the model.
Every failure on the way is an `EC2Error` rendered by `_error_answer`; anything else
is logged with the request id and answered as `InternalError`, never with a traceback.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from ec2gw.actions import regions, registry
from ec2gw.actions.context import RequestContext
from ec2gw.auth import signing_region
from ec2gw.auth.common import query_pairs
from ec2gw.auth.keys import AccessKey, KeyCipher, KeyStore
from ec2gw.auth.verify import Caller, IncomingRequest, verify
from ec2gw.config import Settings, load_settings
from ec2gw.ec2.ids import account_id
from ec2gw.observability import REQUEST_LOGGER, Metrics, configure_logging, log_request
from ec2gw.one.client import CallStats, OneClient
from ec2gw.one.errors import OneError, to_ec2_error
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.protocol import model, sts
from ec2gw.protocol.errors import EC2Error, internal_error
from ec2gw.protocol.parser import parse_params
from ec2gw.protocol.serializer import serialize_error, serialize_response
from ec2gw.throttle import Throttle

log = logging.getLogger(REQUEST_LOGGER)

XML_CONTENT_TYPE = "text/xml;charset=UTF-8"
XML_CONTENT_TYPE_BYTES = XML_CONTENT_TYPE.encode()


@dataclass
class Gateway:
    """What every request shares: settings and the way to OpenNebula."""

    settings: Settings
    one: OneClient
    sessions: ServerCipherSessions
    keys: KeyStore
    throttle: Throttle
    metrics: Metrics

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        one_settings = settings.opennebula
        if not one_settings.endpoint or not one_settings.server_secret:
            raise ValueError("an OpenNebula endpoint and server_secret are required")
        metrics = Metrics()
        one = OneClient(
            one_settings.endpoint,
            timeout=one_settings.timeout,
            max_connections=one_settings.max_connections,
            stats=CallStats(metrics.observe_one_call),
        )
        sessions = ServerCipherSessions(one_settings.server_user, one_settings.server_secret)
        cipher = KeyCipher(settings.auth.key_encryption_key or one_settings.server_secret)
        keys = KeyStore(one, sessions, cipher, cache_seconds=settings.auth.key_cache_seconds)
        throttle = Throttle(settings.gateway.rate_limit, settings.gateway.rate_burst)
        return cls(settings, one, sessions, keys, throttle, metrics)


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


@dataclass
class HttpRequest:
    """What the EC2 endpoint reads of an ASGI request."""

    method: str
    scheme: str
    raw_path: str  # still percent-encoded, without the query
    query: str
    headers: list[tuple[str, str]]  # names lower-cased (ASGI), as received otherwise
    body: bytes
    first: dict[str, str]  # the first value of each header

    def header(self, name: str) -> str:
        return self.first.get(name, "")


async def _read_request(scope: Scope, receive: Receive, limit: int) -> HttpRequest:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    request = HttpRequest(
        method=scope["method"],
        scheme=scope.get("scheme", "http"),
        raw_path=scope.get("raw_path", b"/").decode("latin-1").split("?", 1)[0],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"",
        first=first,
    )
    declared = request.header("content-length")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return request


def request_params(query: str, content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Query and form parameters merged; a name given twice is refused."""
    try:
        pairs = query_pairs(query, errors="strict") if query else []
        media_type = content_type.split(";", 1)[0].strip().lower()
        if body and media_type == "application/x-www-form-urlencoded":
            pairs += query_pairs(body.decode("utf-8"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise EC2Error("MalformedQueryString", "The query string is not valid UTF-8") from None
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise EC2Error("InvalidParameterValue", f"The parameter {name} is given more than once")
        seen.add(name)
    return pairs


@dataclass
class Answer:
    status: int
    body: bytes
    request_id: str

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", XML_CONTENT_TYPE_BYTES),
            (b"content-length", b"%d" % len(self.body)),
            (b"x-amzn-requestid", self.request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def new_request_id() -> str:
    """A random version-4 UUID, as EC2's request ids are. Not a secret: drawn from
    `random` rather than `os.urandom`, which costs a system call per request."""
    digits = f"{random.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def _error_answer(err: EC2Error, request_id: str) -> Answer:
    return Answer(err.status, serialize_error(err.code, err.message, request_id), request_id)


async def handle(gateway: Gateway, scope: Scope, receive: Receive) -> Answer:
    """One EC2 request, from the ASGI scope to the answer; never raises."""
    request_id = new_request_id()
    started = time.perf_counter()
    action = "-"
    access_key = "-"
    error: str | None = None
    try:
        limit = gateway.settings.gateway.max_body_bytes
        try:
            request = await _read_request(scope, receive, limit)
        except _BodyTooLarge:
            raise EC2Error(
                "RequestEntityTooLarge", f"The request body exceeds {limit} bytes", 413
            ) from None
        params = request_params(request.query, request.header("content-type"), request.body)
        action = next((v for k, v in params if k == "Action"), "-")[:64]
        incoming = IncomingRequest(
            method=request.method,
            host=request.header("host"),
            path=request.raw_path,
            query=request.query,
            headers=request.headers,
            body=request.body,
        )
        found: dict[str, AccessKey] = {}

        async def lookup(key_id: str) -> str | None:
            nonlocal access_key
            access_key = key_id  # for the log, also when the signature is refused
            key = await gateway.keys.lookup(key_id)
            if key is None:
                return None
            found["key"] = key
            return key.secret

        caller = await verify(
            incoming, params, lookup, max_skew=gateway.settings.gateway.clock_skew_seconds
        )
        access_key = caller.access_key
        if not gateway.throttle.allow(access_key):
            raise EC2Error("RequestLimitExceeded", "Request limit exceeded.")
        if caller.region is not None and caller.region != gateway.settings.gateway.region_name:
            await check_signing_region(gateway, caller.region)
        result_xml = await _dispatch(gateway, request, params, caller, found["key"], request_id)
        answer = Answer(200, result_xml, request_id)
    except EC2Error as err:
        error = err.code
        answer = _error_answer(err, request_id)
        if err.detail:
            log.warning(
                "request_id=%s %s access_key=%s: %s", request_id, err.code, access_key, err.detail
            )
    except OneError as err:
        log.warning("request_id=%s OpenNebula error on %s: %s", request_id, err.method, err)
        translated = to_ec2_error(err)
        error = translated.code
        answer = _error_answer(translated, request_id)
    except Exception:
        log.exception("request_id=%s unexpected failure in %s", request_id, action)
        error = "InternalError"
        answer = _error_answer(internal_error(), request_id)
    seconds = time.perf_counter() - started
    # Only names EC2 knows become metric labels: client input must not grow the series.
    known = action if model.operation(action) is not None else "-"
    gateway.metrics.observe_request(known, answer.status, error, seconds)
    log_request(log, request_id, access_key, known, answer.status, error, seconds)
    return answer


async def check_signing_region(gateway: Gateway, region: str) -> None:
    """Refuse a request signed for another real region (`ec2gw.auth.signing_region`)
    unless `[gateway] accept_any_signing_region`. Asked after the signature verified, so
    only a key's holder learns the region and the other zones' endpoints."""
    settings = gateway.settings
    if settings.gateway.accept_any_signing_region:
        return
    try:
        zones = await regions.federation_regions(gateway.one, gateway.sessions.admin, settings)
    except (OneError, EC2Error) as err:
        # The zones are unknown for now: refuse what is certain (an AWS region when this
        # gateway's is configured), leave the rest to the request, which meets the outage.
        log.debug("signing region check without the zones: %s", err)
        zones = {}
    local = settings.gateway.region_name or next(
        (name for name, (zid, _) in zones.items() if zid == settings.gateway.zone_id), ""
    )
    if local:
        refused = signing_region.refusal(region, local, zones)
        if refused is not None:
            raise refused


async def _dispatch(
    gateway: Gateway,
    request: HttpRequest,
    params: list[tuple[str, str]],
    caller: Caller,
    key: AccessKey,
    request_id: str,
) -> bytes:
    action = next((v for k, v in params if k == "Action"), None)
    if not action:
        raise EC2Error("MissingAction", "The request must contain the parameter Action")
    if action == sts.ACTION:  # amazon.aws asks STS for the account id at this endpoint
        return sts.caller_identity(account_id(key.uid), key.username, request_id)
    operation = model.operation(action)
    if operation is None:
        raise EC2Error(
            "InvalidAction", f"The action {action[:64]} is not valid for this web service."
        )
    spec = registry.get(action)
    if spec is None:
        raise EC2Error("UnsupportedOperation", f"The action {action} is not supported by ec2gw.")
    args = parse_params(operation, params)
    context = RequestContext(
        request_id=request_id,
        action=action,
        caller=caller,
        key=key,
        settings=gateway.settings,
        host=request.header("host"),
        scheme=request.scheme,
        one_client=gateway.one,
        session=gateway.sessions.for_user(key.username),
        infra_session=gateway.sessions.admin,
    )
    result = await spec.handler(context, args)
    return serialize_response(operation, result, request_id)


def create_from_environment() -> EC2App:
    """The app of one worker process of `ec2gw serve --workers N` (uvicorn's factory): its
    settings come from the `EC2GW_*` variables the serving process exported."""
    settings = load_settings(os.environ.get("EC2GW_CONFIG"))
    configure_logging(settings.gateway.log_json)
    return create_app(settings)


def create_app(settings: Settings, gateway: Gateway | None = None) -> EC2App:
    """The ASGI app. `gateway` may be given by tests that share one."""
    registry.load_all()
    model.service_model()  # load the model at start-up, not on the first request
    signing_region.aws_region_names()  # and the AWS region names (botocore's endpoints)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.gateway = gateway or Gateway.from_settings(settings)
        yield
        await app.state.gateway.one.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Liveness: the process serves HTTP."""
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        body = request.app.state.gateway.metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Readiness: OpenNebula answers the gateway's server account."""
        gateway: Gateway = request.app.state.gateway
        try:
            version = await gateway.one.call(gateway.sessions.admin, "one.system.version")
        except (EC2Error, OneError) as err:
            log.warning("readyz: OpenNebula not ready: %s", getattr(err, "code", err))
            return PlainTextResponse("OpenNebula unreachable\n", status_code=503)
        return PlainTextResponse(f"ok: OpenNebula {version}\n")

    @app.api_route("/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def ec2(request: Request) -> Response:
        """`EC2App` serves GET and POST itself; this route gives other methods their 405."""
        answer = await handle(request.app.state.gateway, request.scope, request.receive)
        headers = {"x-amzn-requestid": answer.request_id}
        return Response(answer.body, answer.status, headers, media_type=XML_CONTENT_TYPE)

    return EC2App(app)


OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class EC2App:
    """The ASGI app: EC2 requests go straight to `handle`; lifespan, health, metrics and
    methods other than GET/POST go to FastAPI.

    Why not FastAPI's route for EC2 requests too: its routing, request and response
    objects cost about as much per request as all of DescribeRegions' own work.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "POST")
            or scope["path"] in OPERATIONS_PATHS
        ):
            await self.api(scope, receive, send)
            return
        answer = await handle(self.api.state.gateway, scope, receive)
        await answer.send(send)
