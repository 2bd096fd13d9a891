"""A randomised fault-injection soak of the pipeline engine (``make soak``; issue 11).

Each scenario is drawn from ``(seed, index)``: a random pipeline (every built-in stage, sync and
async functions, thread and process executors, custom stages, file readers), random faults (many
exception types, hangs, corrupt files) and a random consumer (``async for``, ``collect()``,
``iter_sync``; break, raise, outside cancel, pause). A plain-Python model says what must come out;
the checks say what must not be left behind. Modules:

- ``_values``: the element domain (weights, canonical forms, collate model)
- ``_faults``: exception kinds, fault actions, the user callables that carry them
- ``_scenario``: the scenario description and its random generator
- ``_reference``: the plain-Python model (lazy, so that it knows which faults must surface)
- ``_build``: files on disk and the aiopipe pipeline of a scenario
- ``_observe``: what a scenario may not leave behind (threads, processes, warnings, output)
- ``_execute``: one scenario, in this process, returning its problems
- ``_worker`` / ``runner``: scenarios in recycled child processes with a watchdog; the CLI
"""
