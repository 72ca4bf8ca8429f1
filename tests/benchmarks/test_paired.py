"""The pure logic of the benchmarks' paired, alternating comparisons and of their targets:
no server and no wrk is started here (the runs are replaced by a fake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks import bench, paired, report
from benchmarks.loadgen import Measurement

RAW = "DescribeInstances all [raw one.vmpool.infoextended]"


def row(scenario: str, target: str, size: int | None, *, p50: float, rps: float, **cpu: float):
    notes = {"cpu_ms_per_request": {**cpu, "wrk": 1.0}} if cpu else {}
    return Measurement(scenario, target, size, 4, 40, 5.0, rps, p50, 2 * p50, 0, notes).row()


def singles() -> list[dict[str, Any]]:
    """Single measurements as a run at N=1000 records them (what the old targets used)."""
    return [
        row(bench.BARE, "bare-asgi", None, p50=1.0, rps=30000.0, bare=0.03),
        row("DescribeRegions", "ec2gw", 1000, p50=6.0, rps=5000.0, gateway=0.2, opennebula=0.0),
        row("DescribeInstances all", "ec2gw", 1000, p50=550.0, rps=7.0, gateway=130, opennebula=95),
        row(RAW, "opennebula", 1000, p50=320.0, rps=11.0, opennebula=85.0),
    ]


def comparison(a: dict, b: dict, metric: str, values: list[tuple[float, float]]) -> dict:
    """A paired record whose rounds measured `values` (A, B) of `metric`."""
    rounds = [
        paired.round_result(order, {**a, metric: va}, {**b, metric: vb}, metric)
        for order, (va, vb) in zip(paired.orders(len(values)), values, strict=True)
    ]
    return paired.entry(rounds, metric=metric, seconds=5)


def results(with_paired: bool = True) -> dict[str, Any]:
    bare, regions, listing, raw = singles()
    pairs = [
        comparison(listing, raw, "p50_ms", [(500, 400), (480, 400), (600, 400), (450, 400)]),
        comparison(regions, bare, "rps", [(5000, 10000), (6000, 10000), (5500, 10000)]),
    ]
    return report.build(
        singles(), profiles={}, loading={}, meta={}, paired=pairs if with_paired else None
    )


def target(found: dict[str, Any], start: str) -> dict[str, Any]:
    return next(t for t in found["targets"] if t["target"].startswith(start))


# --- pairing order and the summary of the rounds ---------------------------------------


def test_orders_alternate_abba():
    assert paired.orders(5) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a"), ("a", "b")]
    assert paired.orders(1) == [("a", "b")]
    assert paired.orders(0) == []


def test_spread_is_median_min_max_of_the_known_values():
    assert paired.spread([1.2, 0.9, 1.5, 1.1, 1.0]) == {"median": 1.1, "min": 0.9, "max": 1.5}
    assert paired.spread([1.2, None, 0.9, 1.5, 1.1]) == {"median": 1.15, "min": 0.9, "max": 1.5}
    assert paired.spread([None]) == {"median": None, "min": None, "max": None}


def test_round_result_is_a_over_b_in_the_metric_and_in_server_cpu():
    a = row("DescribeInstances all", "ec2gw", 1000, p50=600.0, rps=6.0, gateway=120, opennebula=80)
    b = row(RAW, "opennebula", 1000, p50=400.0, rps=10.0, opennebula=80.0)
    found = paired.round_result(("b", "a"), a, b, "p50_ms")
    assert found["order"] == "ba"
    assert found["ratio"] == 1.5
    assert found["cpu_x"] == 2.5  # (120 + 80) / 80, wrk aside
    assert (found["a"], found["b"]) == (a, b)
    assert paired.round_result(("a", "b"), a, b, "rps")["ratio"] == 0.6


def test_entry_names_the_sides_and_summarizes_the_rounds():
    _, regions, listing, raw = singles()
    found = comparison(listing, raw, "p50_ms", [(500, 400), (600, 400), (440, 400)])
    assert found["scenario"] == "DescribeInstances all" and found["target"] == "ec2gw"
    assert found["versus"] == RAW and found["versus_target"] == "opennebula"
    assert (found["size"], found["connections"], found["seconds"]) == (1000, 4, 5)
    assert [r["order"] for r in found["rounds"]] == ["ab", "ba", "ab"]
    assert [r["ratio"] for r in found["rounds"]] == [1.25, 1.5, 1.1]
    assert (found["median"], found["min"], found["max"]) == (1.25, 1.1, 1.5)
    assert found["metric"] == "p50_ms"
    json.dumps(found)  # goes into latest.json as it is


# --- targets and the table ---------------------------------------------------------------


def test_targets_use_the_paired_median_and_its_range():
    found = results()
    overhead = target(found, "DescribeInstances all vs raw one.vmpool.infoextended")
    assert "paired median" in overhead["target"]
    # Median of 1.25, 1.2, 1.5, 1.125; the single runs (550 / 320 = 1.72) would fail it.
    assert overhead["measured"] == 1.225 and overhead["met"] is True
    assert overhead["range"] == [1.125, 1.5] and overhead["rounds"] == 4
    regions = target(found, "DescribeRegions vs bare ASGI")
    assert "paired median" in regions["target"]
    assert regions["measured"] == 0.55 and regions["met"] is True
    assert regions["range"] == [0.5, 0.6] and regions["rounds"] == 3
    # The CPU form of the overhead target is still the single measurement's.
    cpu = target(found, "DescribeInstances all, gateway CPU / OpenNebula CPU")
    assert cpu["measured"] == round(130 / 95, 3)


def test_targets_fall_back_to_the_single_runs_without_paired_rounds():
    found = results(with_paired=False)
    overhead = target(found, "DescribeInstances all vs raw one.vmpool.infoextended")
    assert "single runs" in overhead["target"] and "range" not in overhead
    assert overhead["measured"] == round(550 / 320, 3) and overhead["met"] is False
    regions = target(found, "DescribeRegions vs bare ASGI")
    assert regions["measured"] == round(5000 / 30000, 3) and regions["met"] is False


def test_render_shows_the_paired_rounds():
    text = report.render(results())
    assert "Paired, alternating rounds" in text
    assert "median p50_ms x1.225 (min 1.125, max 1.500; 4 rounds)" in text
    assert "[1.125-1.500]" in text


def test_render_reads_results_written_before_the_paired_rounds():
    old = results(with_paired=False)
    del old["paired"]  # a latest.json from before
    for t in old["targets"]:
        t.pop("range", None)
    assert "Paired" not in report.render(old)
    assert "Targets" in report.render(old)


def test_render_reads_the_committed_results():
    committed = Path(bench.HERE / "results" / "latest.json")
    text = report.render(json.loads(committed.read_text()))
    assert "Paired" in text and "paired median" in text


# --- the rounds, with the runs faked --------------------------------------------------------


class FakeServer:
    def cpu_seconds(self) -> float:
        return 0.0


def test_pair_runs_warm_up_then_measures_each_side_in_abba_order(monkeypatch, tmp_path):
    opts = bench.parse_args(["--sizes", "1000", "--pair-rounds", "4", "--pair-requests", "30"])
    runner = bench.Bench(opts, tmp_path)
    runner.log = lambda text: None
    runner.results = [Measurement(**r) for r in singles()]
    runs: list[tuple[str, float]] = []
    p50 = {"ec2gw": 500.0, "opennebula": 400.0}

    def measure(scenario, target, size, pool, shaped, watch, gateway=None):
        runs.append((target, shaped.seconds))
        m = row(scenario, target, size, p50=p50[target], rps=7.0, **{target: 1.0})
        p50[target] += 10  # the machine drifts
        return Measurement(**m)

    monkeypatch.setattr(runner, "measure", measure)
    monkeypatch.setattr(bench, "settle", lambda watch: None)
    server = FakeServer()
    a = bench.Side("DescribeInstances all", "ec2gw", 1000, [], {"gateway": server})
    b = bench.Side(RAW, "opennebula", 1000, [], {"opennebula": server})
    found = runner.pair(a, b, "p50_ms", bench.Shape(4, 30.0, 60.0))

    # 30 answers from the slower side (7/s alone): 5 s a side, each after a 1 s warm-up.
    side = {"a": "ec2gw", "b": "opennebula"}
    expected = [
        (side[key], seconds)
        for order in ("ab", "ba", "ab", "ba")
        for key in order
        for seconds in (bench.WARM_UP_SECONDS, 5)
    ]
    assert runs == expected
    assert found is not None and found["seconds"] == 5
    assert [r["order"] for r in found["rounds"]] == ["ab", "ba", "ab", "ba"]
    assert [(r["a"]["p50_ms"], r["b"]["p50_ms"]) for r in found["rounds"]] == [
        (510, 410), (530, 430), (550, 450), (570, 470)
    ]  # fmt: skip
    assert runner.results == [Measurement(**r) for r in singles()]  # the rounds are kept apart


def test_pair_is_skipped_without_single_measurements(tmp_path):
    runner = bench.Bench(bench.parse_args(["--sizes", "1000"]), tmp_path)
    runner.log = lambda text: None
    a = bench.Side("DescribeInstances all", "ec2gw", 1000, [], {})
    b = bench.Side(RAW, "opennebula", 1000, [], {})
    assert runner.pair(a, b, "p50_ms", bench.Shape(4, 30.0, 60.0)) is None
