"""Paired, alternating comparisons. Two measurements taken minutes apart on a shared machine
differ by its swings (up to a quarter in CPU cost); here the two sides of a ratio are run in
K short rounds, A then B, then B then A (ABBA, so that a drift within the pair weighs on both
sides alike), and the ratio is taken per round: its median over the rounds is the figure,
its min-max the spread. Pure logic only; the runs themselves are `Bench.paired`."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.report import Row, _div, server_cpu

A, B = "a", "b"


def orders(rounds: int) -> list[tuple[str, str]]:
    """Which side runs first in each round: A B, B A, A B, ..."""
    return [(A, B) if i % 2 == 0 else (B, A) for i in range(rounds)]


def spread(values: list[float | None]) -> dict[str, float | None]:
    """Median, min and max of the measured values (a round without a figure is left out)."""
    known = [v for v in values if v is not None]
    if not known:
        return {"median": None, "min": None, "max": None}
    return {"median": round(statistics.median(known), 3), "min": min(known), "max": max(known)}


def round_result(order: tuple[str, str], a: Row, b: Row, metric: str) -> dict[str, Any]:
    """One round: the two measurement rows, the ratio A / B of `metric` (p50_ms, rps), and the
    ratio of the CPU per request the servers of each side spent (from /proc, wrk aside)."""
    return {
        "order": "".join(order),
        "ratio": _div(a[metric], b[metric]),
        "cpu_x": _div(server_cpu(a), server_cpu(b)),
        "a": a,
        "b": b,
    }


def entry(rounds: list[dict[str, Any]], *, metric: str, seconds: float) -> dict[str, Any]:
    """The `paired` record of one comparison, from its (one or more) rounds: sides A and B
    (scenario and target as in their single measurements), the rounds, and the median and
    min-max of the ratio and of the CPU ratio."""
    a, b = rounds[0]["a"], rounds[0]["b"]
    cpu = spread([r["cpu_x"] for r in rounds])
    return {
        "scenario": a["scenario"],
        "target": a["target"],
        "versus": b["scenario"],
        "versus_target": b["target"],
        "size": a["size"],
        "metric": metric,
        "connections": a["connections"],
        "seconds": seconds,
        **spread([r["ratio"] for r in rounds]),
        "cpu_x": cpu["median"],
        "rounds": rounds,
    }
