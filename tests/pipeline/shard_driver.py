"""One rank of a data-parallel job: prints its batches as JSON (run by test_shard.py).

Usage: python shard_driver.py PATTERN EPOCHS EQUAL; the rank comes from WORLD_SIZE/RANK or Slurm.
"""

from __future__ import annotations

import json
import sys

import aiopipe as ap


def main() -> None:
    pattern, epochs, equal = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    pipe = (
        ap.from_files(pattern, epochs=epochs, shuffle=True, seed=11)
        .shard(equal=equal)
        .read(ap.readers.TextLines())
        .batch(4)
    )
    with pipe.iter_sync() as batches:
        print(json.dumps([list(b) for b in batches]))


if __name__ == "__main__":
    main()
