"""The one exception type of ec2gw: an EC2 error code, its message and its HTTP status.

Raise `EC2Error` anywhere; `ec2gw.app` renders it, in exactly one place, as EC2's error
envelope. Statuses follow `shared/reference/ec2-clients.md` §3.3.
"""

from __future__ import annotations

# Codes whose HTTP status is not the default 400.
_STATUS_BY_CODE: dict[str, int] = {
    "AuthFailure": 401,
    "UnauthorizedOperation": 403,
    "OptInRequired": 403,
    "Blocked": 403,
    "DryRunOperation": 412,
    "InternalError": 500,
    "InternalFailure": 500,
    "Unavailable": 503,
    "ServiceUnavailable": 503,
    "RequestLimitExceeded": 503,
}


class EC2Error(Exception):
    """An error answered to the client as `<Response><Errors><Error>...`."""

    def __init__(
        self, code: str, message: str, status: int | None = None, *, detail: str = ""
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS_BY_CODE.get(code, 400)
        self.detail = detail  # for the operator's log only: never sent to the client


def missing_parameter(name: str) -> EC2Error:
    return EC2Error("MissingParameter", f"The request must contain the parameter {name}")


def invalid_value(name: str, value: object, reason: str = "") -> EC2Error:
    detail = f" {reason}" if reason else ""
    return EC2Error("InvalidParameterValue", f"Invalid value '{value}' for {name}.{detail}")


def dry_run_ok() -> EC2Error:
    return EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")


def unauthorized() -> EC2Error:
    return EC2Error("UnauthorizedOperation", "You are not authorized to perform this operation.")


def auth_failure(detail: str = "") -> EC2Error:
    """Always the same answer, so a probe learns nothing; `detail` says why, in the log."""
    return EC2Error(
        "AuthFailure", "AWS was not able to validate the provided access credentials", detail=detail
    )


def internal_error() -> EC2Error:
    return EC2Error("InternalError", "An internal error has occurred")


def unavailable() -> EC2Error:
    return EC2Error("Unavailable", "The service is unavailable. Please try again shortly.")
