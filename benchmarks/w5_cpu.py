"""W5 CPU-bound loading: W5a decodes and augments JPEGs, W5b tokenises text in pure Python.

W5a: 2,000 JPEGs (~320x240, in memory) -> Pillow decode -> random crop 224 -> random flip ->
float32 CHW normalise -> batch 64. Pillow and numpy release the GIL for most of it.
W5b: 1,500 documents of 4,000 words -> a pure-Python tokeniser (~1 ms, holds the GIL) ->
int32[128] (hashed bag of words) -> batch 64.

The baseline is the sequential loop (``np.stack([fn(x) for x in chunk])``); every system's result
is checked against it (sum and count of every batch). The crop and flip of element ``i`` come from
``(SEED, i)``, so every system computes the same arrays whatever runs where.

    python benchmarks/w5_cpu.py [--quick] [--runs R] [--json PATH] [--chart DIR]
    python benchmarks/w5_cpu.py --compare W5a|W5b N ROUNDS    (interleaved rounds: a busy machine)
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _rivals
from _common import Workload, check_close, check_equal, standalone, time_runs

import aiopipe as ap

BATCH = 64
SEED = 5
CROP = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1) * 255
TARGETS = {"W5a": 1.6, "W5b": 1.7}  # x the sequential loop, with executor="process"

Result = tuple[float, int]  # (sum of every batch, samples)


# -- the work: module-level functions, so that worker processes import them ---------------------


def make_jpegs(n: int) -> list[tuple[int, bytes]]:
    """``n`` JPEGs of ~320x240: smooth colour fields plus noise (so they compress like photos)."""
    from PIL import Image

    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    out = []
    for i in range(n):
        a, b, c = rng.uniform(0.01, 0.05, 3)
        base = np.stack([np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], axis=-1)
        img = (base * 100 + 128 + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append((i, buf.getvalue()))
    return out


def augment(item: tuple[int, bytes]) -> np.ndarray:
    """Decode, random crop 224, random horizontal flip, float32 CHW normalised."""
    from PIL import Image

    i, data = item
    rng = np.random.default_rng((SEED, i))
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    x, y = int(rng.integers(0, w - CROP + 1)), int(rng.integers(0, h - CROP + 1))
    img = img.crop((x, y, x + CROP, y + CROP))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
    return (arr - MEAN) / STD


WORDS = [f"{a}{b}" for a in ("al", "be", "co", "da", "el", "fo", "gu", "hi") for b in range(600)]
VOCAB = {w: i for i, w in enumerate(WORDS[: len(WORDS) // 2])}  # half the words are unknown


def make_docs(n: int, words: int = 4_000) -> list[str]:
    rng = np.random.default_rng(SEED)
    punct = np.array(["", "", "", ",", "."])
    out = []
    for _ in range(n):
        picks = rng.integers(0, len(WORDS), words)
        marks = punct[rng.integers(0, len(punct), words)]
        caps = rng.random(words) < 0.1
        out.append(
            " ".join(
                (WORDS[p].capitalize() if c else WORDS[p]) + m
                for p, m, c in zip(picks, marks, caps, strict=True)
            )
        )
    return out


def tokenise(doc: str) -> np.ndarray:
    """A pure-Python tokeniser (~1 ms a document; holds the GIL): hashed bag of words, 128 bins."""
    counts = [0] * 128
    for raw in doc.split():
        word = raw.lower().strip(".,;:!?")
        tid = VOCAB.get(word)
        if tid is None:  # unknown: split into character bigrams, as a subword tokeniser would
            for j in range(0, len(word) - 1, 2):
                h = 0
                for ch in word[j : j + 2]:
                    h = (h * 31 + ord(ch)) & 0xFFFF
                counts[h & 127] += 1
        else:
            counts[(tid * 2654435761 >> 7) & 127] += 1
    return np.array(counts, dtype=np.int32)


# -- systems -------------------------------------------------------------------------------------


def _sum_batches(batches: Iterable[np.ndarray]) -> Result:
    total, count = 0.0, 0
    for batch in batches:
        total += float(batch.sum(dtype=np.float64))
        count += len(batch)
    return total, count


def sequential(fn: Callable[[Any], np.ndarray], items: list[Any]) -> Result:
    return _sum_batches(
        np.stack([fn(x) for x in items[i : i + BATCH]]) for i in range(0, len(items), BATCH)
    )


def aiopipe_run(
    executor: str | None, workers: int, backend: str = "asyncio"
) -> Callable[[Callable[[Any], np.ndarray], list[Any]], Result]:
    def run(fn: Callable[[Any], np.ndarray], items: list[Any]) -> Result:
        async def main() -> Result:
            pipe = ap.from_iterable(items).map(fn, workers=workers, executor=executor).batch(BATCH)
            total, count = 0.0, 0
            async with pipe.open() as batches:
                async for batch in batches:
                    total += float(batch.sum(dtype=np.float64))
                    count += len(batch)
            return total, count

        return anyio.run(main, backend=backend)

    return run


def aiopipe_systems(
    quick: bool,
) -> dict[str, Callable[[Callable[[Any], np.ndarray], list[Any]], Result]]:
    systems = {
        'aiopipe executor="thread", workers=2': aiopipe_run("thread", 2),
        'aiopipe executor="process", workers=2': aiopipe_run("process", 2),
    }
    if not quick:  # the smoke test runs --quick on a busy machine: the two that matter
        systems["aiopipe map(fn), inline"] = aiopipe_run(None, 1)
        systems['aiopipe executor="process", workers=2, trio'] = aiopipe_run("process", 2, "trio")
    return systems


def run_one(key: str, *, quick: bool, runs: int | None) -> Workload:
    runs = runs or (1 if quick else 3)
    if key == "W5a":
        n = 2_000 if not quick else 32
        fn: Callable[[Any], np.ndarray] = augment
        items: list[Any] = make_jpegs(n)
        title = (
            f"{n:,} JPEGs ~320x240 -> decode -> crop {CROP} -> flip -> normalise -> batch {BATCH}"
        )
    else:
        n = 1_500 if not quick else 32
        fn, items = tokenise, make_docs(n)
        title = f"{n:,} docs of 4,000 words -> pure-Python tokeniser -> int32[128] -> batch {BATCH}"
    w = Workload(key, title)
    w.params = {"items": n, "runs": runs, "batch": BATCH}
    expected = sequential(fn, items)

    def check(res: Result) -> None:
        check_equal(f"{key} samples", res[1], n)
        check_close(f"{key} sum", res[0], expected[0], rel=1e-9)

    base = time_runs(lambda: sequential(fn, items), runs=runs, check=check)
    w.add_rate("sequential loop (baseline)", n, base, ratio=1.0, ratio_to="sequential")
    systems = aiopipe_systems(quick) | _rivals.w5_systems()
    for name, system in systems.items():
        try:
            t = time_runs(lambda system=system: system(fn, items), runs=runs, check=check)
        except Exception as exc:
            if name.startswith("aiopipe"):
                raise
            w.note(f"{name} failed: {type(exc).__name__}: {exc}")
            continue
        ratio = base.median / t.median
        kw: dict[str, Any] = {"ratio": ratio, "ratio_to": "sequential"}
        if name.startswith('aiopipe executor="process"') and "trio" not in name:
            kw |= {"target": f">= {TARGETS[key]}x", "met": ratio >= TARGETS[key]}
        w.add_rate(name, n, t, **kw)
    w.note("2 cores shared with other jobs: medians of the runs, ratios within this run")
    return w


def run_a(*, quick: bool = False, runs: int | None = None) -> Workload:
    return run_one("W5a", quick=quick, runs=runs)


def run_b(*, quick: bool = False, runs: int | None = None) -> Workload:
    return run_one("W5b", quick=quick, runs=runs)


def compare(key: str, n: int, rounds: int) -> None:
    """The main systems in interleaved rounds (sequential, thread, process, DataLoader(2) if
    installed), so that a shared machine's load changes hit them alike; prints medians."""
    fn, items = (augment, make_jpegs(n)) if key == "W5a" else (tokenise, make_docs(n))
    systems: dict[str, Callable[[], Result]] = {
        "sequential loop": lambda: sequential(fn, items),
        'aiopipe executor="thread", workers=2': lambda: aiopipe_run("thread", 2)(fn, items),
        'aiopipe executor="process", workers=2': lambda: aiopipe_run("process", 2)(fn, items),
    }
    rivals = _rivals.w5_systems()
    if "torch DataLoader(num_workers=2)" in rivals:
        dl2 = rivals["torch DataLoader(num_workers=2)"]
        systems["torch DataLoader(num_workers=2)"] = lambda: dl2(fn, items)
    expected = sequential(fn, items)
    times: dict[str, list[float]] = {name: [] for name in systems}
    for name, system in systems.items():  # warm-up, and a check of every result
        got = system()
        check_equal(f"{key} {name} samples", got[1], n)
        check_close(f"{key} {name} sum", got[0], expected[0], rel=1e-9)
    for _ in range(rounds):
        for name, system in systems.items():
            t0 = time.perf_counter()
            system()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["sequential loop"])
    print(f"{key}: {n} items, medians of {rounds} interleaved rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:40s} {n / med:8.1f} items/s  {base / med:.2f}x sequential")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--compare"]:  # --compare W5a|W5b N ROUNDS
        compare(argv[1], int(argv[2]), int(argv[3]))
        return 0

    def both(**kw: Any) -> Workload:
        a, b = run_a(**kw), run_b(**kw)
        a.rows += b.rows
        a.notes += b.notes
        return a

    return standalone(both, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
