"""A soak worker process: reads ``seed index`` lines, runs each scenario, writes one JSON line.

Its stderr goes to a file so that anything a run prints there is caught. A watchdog thread ends
the process (after reporting the hang and every thread's stack) when a scenario outlives its
timeout, so even a hang that no cancellation can reach (a shielded sleep, a stuck thread) is
reported instead of freezing the soak. The worker exits after a scenario with problems, so that
what that one left behind cannot blame the next.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

# Absolute imports: anyio's process workers re-run this file as ``__mp_main__`` by its path.
from tests.soak._execute import run_scenario
from tests.soak._scenario import make_scenario
from tests.soak._watchdog import GRACE_S, RECYCLE, Watchdog


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    # Everything else the runs print lands in a file we can read back per scenario.
    err = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
    os.dup2(err.fileno(), 2)
    os.dup2(err.fileno(), 1)
    dog = Watchdog(out)
    for line in sys.stdin:
        seed, index = map(int, line.split())
        scn = make_scenario(seed, index)
        dog.arm(index, scn.timeout + GRACE_S)
        problems, facts = run_scenario(scn)
        dog.disarm()
        report = {"index": index, "problems": problems, "seconds": round(facts.seconds, 3)}
        out.write(json.dumps(report) + "\n")
        out.flush()
        if any(p.startswith(RECYCLE) for p in problems):
            break
    out.close()
    os._exit(0)  # a leaked non-daemon thread must not keep the worker alive


if __name__ == "__main__":
    main()
