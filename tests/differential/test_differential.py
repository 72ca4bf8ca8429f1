"""Each scenario runs on the real oned and on the embedded OpenNebula; every reply must
match once normalised (see normalize.py). A failure names each call that differs."""

from __future__ import annotations

import pytest

from tests.differential.harness import Cloud, Side, StepFailed
from tests.differential.normalize import differences
from tests.differential.scenarios import SCENARIOS


def play(cloud: Cloud, name: str) -> Side:
    side = Side(cloud)
    try:
        SCENARIOS[name](side)
    except StepFailed as err:
        side.steps.append(type(side.steps[0])("scenario stopped", [str(err)[:300]]))
    finally:
        side.cleanup()
    return side


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_replies(name: str, oned: Cloud, onesim: Cloud) -> None:
    real, sim = play(oned, name), play(onesim, name)
    report = []
    for i in range(max(len(real.steps), len(sim.steps))):
        a = real.steps[i] if i < len(real.steps) else None
        b = sim.steps[i] if i < len(sim.steps) else None
        if a is None or b is None or a.label != b.label:
            report.append(f"step {i}: oned {a and a.label!r} / onesim {b and b.label!r}")
            break
        diff = differences(a.lines, b.lines)
        if diff:
            report.append(f"step {i}: {a.label}\n  " + "\n  ".join(diff))
    if report:
        pytest.fail(f"{name}: {len(report)} divergent calls\n" + "\n".join(report), pytrace=False)
