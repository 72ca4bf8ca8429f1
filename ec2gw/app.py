"""The HTTP front: one route, one error envelope, one log line per request.

The path of a request: read the body (bounded) → merge query and form parameters →
verify the signature → find the action in botocore's model and in our registry → parse
the parameters by the model → run the handler as the caller → serialize by the model.
Every failure on the way is an `EC2Error` rendered by `_error_response`; anything else
is logged with the request id and answered as `InternalError`, never with a traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from ec2gw.actions import registry
from ec2gw.actions.context import RequestContext
from ec2gw.auth.keys import AccessKey, KeyCipher, KeyStore
from ec2gw.auth.verify import Caller, IncomingRequest, verify
from ec2gw.config import Settings
from ec2gw.ec2.ids import account_id
from ec2gw.observability import Metrics
from ec2gw.one.client import CallStats, OneClient
from ec2gw.one.errors import OneError, to_ec2_error
from ec2gw.one.sessions import ServerCipherSessions
from ec2gw.protocol import model, sts
from ec2gw.protocol.errors import EC2Error, internal_error
from ec2gw.protocol.parser import parse_params
from ec2gw.protocol.serializer import serialize_error, serialize_response
from ec2gw.throttle import Throttle

log = logging.getLogger("ec2gw.request")

XML_CONTENT_TYPE = "text/xml;charset=UTF-8"


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


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _decode_pairs(raw: str | bytes) -> list[tuple[str, str]]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return parse_qsl(raw, keep_blank_values=True, errors="strict")


def request_params(query: str, content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Query and form parameters merged; a name given twice is refused."""
    try:
        pairs = _decode_pairs(query)
        media_type = content_type.split(";", 1)[0].strip().lower()
        if body and media_type == "application/x-www-form-urlencoded":
            pairs += _decode_pairs(body)
    except (UnicodeDecodeError, ValueError):
        raise EC2Error("MalformedQueryString", "The query string is not valid UTF-8") from None
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise EC2Error("InvalidParameterValue", f"The parameter {name} is given more than once")
        seen.add(name)
    return pairs


def _xml(body: bytes, status: int, request_id: str) -> Response:
    return Response(
        content=body,
        status_code=status,
        media_type=XML_CONTENT_TYPE,
        headers={"x-amzn-requestid": request_id},
    )


def _error_response(err: EC2Error, request_id: str) -> Response:
    return _xml(serialize_error(err.code, err.message, request_id), err.status, request_id)


async def handle(gateway: Gateway, request: Request) -> Response:
    request_id = str(uuid.uuid4())
    started = time.perf_counter()
    action = "-"
    access_key = "-"
    error: str | None = None
    try:
        try:
            body = await _read_body(request, gateway.settings.gateway.max_body_bytes)
        except _BodyTooLarge:
            limit = gateway.settings.gateway.max_body_bytes
            raise EC2Error(
                "RequestEntityTooLarge", f"The request body exceeds {limit} bytes", 413
            ) from None
        query = request.url.query
        params = request_params(query, request.headers.get("content-type", ""), body)
        action = next((v for k, v in params if k == "Action"), "-")[:64]
        incoming = IncomingRequest(
            method=request.method,
            host=request.headers.get("host", ""),
            path=request.scope.get("raw_path", b"/").decode("latin-1").split("?", 1)[0],
            query=query,
            headers=[
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]
            ],
            body=body,
        )
        found: dict[str, AccessKey] = {}

        async def lookup(key_id: str) -> str | None:
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
        result_xml = await _dispatch(gateway, request, params, caller, found["key"], request_id)
        response = _xml(result_xml, 200, request_id)
    except EC2Error as err:
        error = err.code
        response = _error_response(err, request_id)
    except OneError as err:
        log.warning("request_id=%s OpenNebula error on %s: %s", request_id, err.method, err)
        translated = to_ec2_error(err)
        error = translated.code
        response = _error_response(translated, request_id)
    except Exception:
        log.exception("request_id=%s unexpected failure in %s", request_id, action)
        error = "InternalError"
        response = _error_response(internal_error(), request_id)
    seconds = time.perf_counter() - started
    # Only names EC2 knows become metric labels: client input must not grow the series.
    known = action if model.operation(action) is not None else "-"
    gateway.metrics.observe_request(known, response.status_code, error, seconds)
    fields = {
        "request_id": request_id,
        "access_key": access_key,
        "action": known,
        "status": response.status_code,
        "error": error or "-",
        "latency_ms": round(seconds * 1000, 1),
    }
    log.info(" ".join(f"{k}={v}" for k, v in fields.items()), extra=fields)
    return response


async def _dispatch(
    gateway: Gateway,
    request: Request,
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
        host=request.headers.get("host", ""),
        scheme=request.url.scheme,
        one_client=gateway.one,
        session=gateway.sessions.for_user(key.username),
        infra_session=gateway.sessions.admin,
    )
    result = await spec.handler(context, args)
    return serialize_response(operation, result, request_id)


def create_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    """The ASGI app. `gateway` may be given by tests that share one."""
    registry.load_all()
    model.service_model()  # load the model at start-up, not on the first request

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
        return await handle(request.app.state.gateway, request)

    return app
