"""The action registry: one async handler per EC2 action.

A handler receives the request context and the parameters parsed by the model (boto3
member names) and returns a dict shaped like the operation's output. The registry also
records how each action maps onto OpenNebula and, for the actions that change OpenNebula,
what they rely on in oned (template modes, the states oned accepts, what a failure leaves
behind), which the README's table is generated from.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ec2gw.actions.context import RequestContext

Handler = Callable[["RequestContext", dict[str, Any]], Awaitable[dict[str, Any]]]

# Modules that register actions; imported once by `load_all`.
ACTION_MODULES = (
    "regions",
    "account",
    "images",
    "instance_types",
    "instances",
    "keypairs",
    "tags",
    "vpc",
    "addresses",
    "security_groups",
    "storage",
)


@dataclass(frozen=True)
class ActionSpec:
    name: str
    handler: Handler
    opennebula: str  # how the action maps onto OpenNebula, for the README
    oned: str = ""  # what a writing action relies on in oned, for the README


_REGISTRY: dict[str, ActionSpec] = {}


def action(name: str, *, opennebula: str, oned: str = "") -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in _REGISTRY:
            raise RuntimeError(f"action {name} registered twice")
        _REGISTRY[name] = ActionSpec(name, handler, opennebula, oned)
        return handler

    return register


def load_all() -> dict[str, ActionSpec]:
    for module in ACTION_MODULES:
        importlib.import_module(f"ec2gw.actions.{module}")
    return _REGISTRY


def get(name: str) -> ActionSpec | None:
    return _REGISTRY.get(name)


def all_actions() -> list[ActionSpec]:
    return sorted(load_all().values(), key=lambda spec: spec.name)
