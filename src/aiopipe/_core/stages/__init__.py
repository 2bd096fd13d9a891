"""The built-in stages: sources, transforms, reads, combinators (each on the engine's contract)."""
