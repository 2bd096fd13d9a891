"""The engine: the stage contract, channels, the run and its coordinator, state, threads."""
