"""The benchmarks' worker comparison (N workers / 1): p50 beside throughput, and one request
at a time on one connection, where a stall per answer shows (issue 20). No server and no
wrk is started here (the runs are replaced by a fake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import bench, report
from benchmarks.loadgen import Measurement
from benchmarks.seed import Peer
from benchmarks.signing import Target

ONE = report.ONE_CONNECTION


def row(scenario: str, target: str, *, c: int, p50: float, rps: float) -> dict[str, Any]:
    notes = {"cpu_ms_per_request": {"gateway": 0.2, "opennebula": 0.0, "wrk": 0.1}}
    return Measurement(scenario, target, 1000, c, 4000, 3.0, rps, p50, 3 * p50, 0, notes).row()


def measured(stalled: bool) -> list[dict[str, Any]]:
    """Issue 20's figures: loaded, 2 workers scale; alone, each of their answers waits 44 ms
    for a delayed ACK (Nagle) when `stalled`."""
    return [
        row("DescribeRegions", "ec2gw", c=32, p50=5.66, rps=5267.9),
        row("DescribeRegions", "ec2gw-w2", c=32, p50=2.76, rps=11126.6),
        row(ONE, "ec2gw", c=1, p50=0.44, rps=2043.8),
        row(ONE, "ec2gw-w2", c=1, p50=43.97 if stalled else 0.43, rps=22.6 if stalled else 2050.6),
    ]


def build(stalled: bool) -> dict[str, Any]:
    return report.build(measured(stalled), profiles={}, loading={}, meta={})


def target(found: dict[str, Any], start: str) -> dict[str, Any]:
    return next(t for t in found["targets"] if t["target"].startswith(start))


def test_worker_ratios_keep_each_sides_throughput_and_p50():
    found = build(stalled=True)
    regions, alone = found["ratios"]["workers"]
    assert regions["scenario"] == "DescribeRegions" and regions["connections"] == 32
    assert regions["one"] == {"rps": 5267.9, "p50_ms": 5.66}
    assert regions["many"] == {"rps": 11126.6, "p50_ms": 2.76}
    assert regions["throughput_x"] == 2.112 and regions["p50_x"] == 0.488
    assert alone["scenario"] == ONE and alone["connections"] == 1
    assert alone["one"]["p50_ms"] == 0.44 and alone["many"]["p50_ms"] == 43.97
    assert alone["p50_x"] == 99.932
    json.dumps(found)  # goes into latest.json as it is


def test_a_stall_per_answer_fails_the_one_connection_target_though_loaded_runs_scale():
    stalled = build(stalled=True)
    assert target(stalled, "DescribeRegions: ec2gw-w2 vs 1 (throughput")["met"] is True
    alone = target(stalled, f"{ONE}: ec2gw-w2 vs 1 (p50")
    assert alone["measured"] == 99.932 and alone["met"] is False
    fixed = target(build(stalled=False), f"{ONE}: ec2gw-w2 vs 1 (p50")
    assert fixed["measured"] == round(0.43 / 0.44, 3) and fixed["met"] is True


def test_one_connection_target_is_not_measured_without_workers():
    found = report.build(measured(stalled=False)[:1], profiles={}, loading={}, meta={})
    alone = target(found, f"{ONE}: N workers vs 1")
    assert alone["measured"] is None and alone["met"] is None


def test_render_shows_p50_beside_throughput_for_each_side():
    text = report.render(build(stalled=True))
    lines = text.splitlines()
    title = lines.index("ec2gw with N uvicorn workers / 1 worker (throughput and p50 of each side)")
    regions, alone = lines[title + 1], lines[title + 2]
    assert "c=32" in regions and "1 worker   5,267.9/s p50    5.66 ms" in regions
    assert "2 workers  11,126.6/s p50    2.76 ms" in regions
    assert "throughput x2.112  p50 x0.488" in regions
    assert alone.lstrip().startswith(ONE) and "c=1" in alone
    assert "2 workers      22.6/s p50   43.97 ms" in alone and "p50 x99.932" in alone
    assert "NOT met" in next(line for line in lines if f"{ONE}: ec2gw-w2 vs 1" in line)


def test_render_finds_the_sides_of_results_written_before_they_were_kept():
    committed = json.loads(Path(bench.HERE / "results" / "latest.json").read_text())
    for r in committed["ratios"]["workers"]:
        r.pop("one", None), r.pop("many", None), r.pop("connections", None)
    text = report.render(committed)
    regions = next(
        line
        for line in text.splitlines()
        if line.lstrip().startswith("DescribeRegions ") and "1 worker" in line
    )
    assert "c=32" in regions and "p50" in regions and "throughput x" in regions


class FakeServer:
    url = "http://127.0.0.1:1"
    stopped = False

    def cpu_seconds(self) -> float:
        return 0.0

    def stop(self) -> None:
        self.stopped = True


def test_workers_measures_one_connection_on_both_gateways(monkeypatch, tmp_path):
    opts = bench.parse_args(["--sizes", "1000", "--workers", "2"])
    runner = bench.Bench(opts, tmp_path)
    runner.log = lambda text: None
    runner.sim, runner.gateway, many = FakeServer(), FakeServer(), FakeServer()
    runner.ec2gw_side = {"gateway": runner.gateway, "opennebula": runner.sim}
    main = Target("ec2gw", "http://127.0.0.1:2", "opennebula", "AKIA", "secret")
    runner.ec2gw = Peer("ec2gw", main, main, "ami-00000001", "bench.nano", ["i-00000001"])
    monkeypatch.setattr(bench.servers, "start_gateway", lambda sim, logs, workers: many)
    monkeypatch.setattr(bench, "probe", lambda request, tries=3: 0.001)
    runs: list[tuple[str, str, int, str, object]] = []

    def measure(scenario, target, size, pool, shaped, watch, gateway=None):
        runs.append((scenario, target, shaped.connections, pool[0].url, watch["gateway"]))
        return Measurement(**row(scenario, target, c=shaped.connections, p50=1.0, rps=1.0))

    monkeypatch.setattr(runner, "measure", measure)
    loaded = bench.Shape(32, 5.0, 60.0)
    shapes = dict.fromkeys(
        ("DescribeRegions", "DescribeInstances one id", "DescribeInstances all"), loaded
    )
    runner.workers(1000, shapes)

    assert runs == [
        ("DescribeRegions", "ec2gw-w2", 32, many.url + "/", many),
        ("DescribeInstances one id", "ec2gw-w2", 32, many.url + "/", many),
        ("DescribeInstances all", "ec2gw-w2", 32, many.url + "/", many),
        (ONE, "ec2gw", 1, main.url + "/", runner.gateway),
        (ONE, "ec2gw-w2", 1, many.url + "/", many),
    ]
    assert many.stopped
    found = report.build([m.row() for m in runner.results], profiles={}, loading={}, meta={})
    ratios = found["ratios"]["workers"]
    assert [r["scenario"] for r in ratios] == [ONE]  # the loaded 1-worker runs were not faked
