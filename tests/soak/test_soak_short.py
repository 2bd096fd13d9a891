"""The soak's short fixed-seed form (issue 11), and checks that the soak itself can fail."""

from __future__ import annotations

import io

from ._execute import Facts, judge
from ._reference import model
from ._scenario import make_scenario
from .runner import problem_class, run_soak

# A fixed seed, so that a failure here is reproducible with
# `SOAK_SEED=11 SOAK_ONLY=<index> make soak`; `make soak` runs 1,000 scenarios of any seed.
SHORT_SEED = 11
SHORT_N = 100


def test_soak_short_form() -> None:
    out = io.StringIO()
    bad = run_soak(SHORT_N, SHORT_SEED, jobs=2, out=out)
    assert bad == 0, out.getvalue()


def test_scenarios_are_reproducible() -> None:
    for index in range(30):
        assert make_scenario(5, index).describe() == make_scenario(5, index).describe()
    assert make_scenario(5, 1).describe() != make_scenario(6, 1).describe()


def _clean_scenario() -> tuple[int, int]:
    """A fault-free scenario whose order is exact and whose model has outputs."""
    from ._reference import order_kind

    for index in range(200):
        scn = make_scenario(3, index)
        if (
            not scn.faults
            and scn.consumer["action"] == "none"
            and order_kind(scn)["exact"]
            and len(model(scn, None).outputs) >= 3
        ):
            return 3, index
    raise AssertionError("no clean scenario in the first 200")


def test_judge_flags_lost_and_invented_outputs() -> None:
    seed, index = _clean_scenario()
    scn = make_scenario(seed, index)
    want = model(scn, None).outputs
    assert judge(scn, Facts(received=list(want))) == []
    lost = judge(scn, Facts(received=want[:-1]))
    assert lost
    assert lost[0].startswith("output differs")
    assert judge(scn, Facts(received=[*want, want[0]]))


def test_judge_flags_hangs_leftovers_and_quiet_errors() -> None:
    seed, index = _clean_scenario()
    scn = make_scenario(seed, index)
    want = model(scn, None).outputs
    facts = Facts(received=list(want), timed_out=True, inflight_after=1, gens_open_after=2)
    problems = judge(scn, facts)
    assert problems[0].startswith("hang")
    assert any("still running" in p for p in problems)
    assert any("not closed" in p for p in problems)
    unexpected = judge(scn, Facts(received=list(want), exc=ValueError("from nowhere")))
    assert unexpected == ["unexpected exception: ValueError: from nowhere"]


def test_problem_classes_blur_particulars() -> None:
    assert problem_class("hang: no end within 8 s (received 17)") == problem_class(
        "hang: no end within 30 s (received 3)"
    )
