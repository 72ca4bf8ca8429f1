"""botocore's ec2 service model (API 2016-11-15): the single source of the wire format.

Parser and serializer derive every name, type and list rule from this model instead of
hand-written per-action templates (DESIGN.md, decision 1).
"""

from __future__ import annotations

from functools import cache

from botocore.loaders import Loader
from botocore.model import OperationModel, ServiceModel

API_VERSION = "2016-11-15"

# The model says "http://ec2.amazonaws.com/doc/2016-11-15" (no slash); real EC2 answers
# with the trailing slash and libcloud's namespaced XPath only matches that exact string.
NAMESPACE = f"http://ec2.amazonaws.com/doc/{API_VERSION}/"


@cache
def service_model() -> ServiceModel:
    """The ec2 model of the installed botocore, pinned to API 2016-11-15, loaded once."""
    data = Loader().load_service_model("ec2", "service-2", api_version=API_VERSION)
    return ServiceModel(data, service_name="ec2")


@cache
def _operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


@cache
def _operation(action: str) -> OperationModel:
    return service_model().operation_model(action)


def operation(action: str) -> OperationModel | None:
    """The operation named `action` (e.g. "DescribeInstances"), or None if EC2 has none."""
    if action not in _operation_names():
        return None
    return _operation(action)
