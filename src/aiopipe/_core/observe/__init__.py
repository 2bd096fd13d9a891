"""Observation: per-stage counters, traces, the progress bar (a read-only view of a run)."""
