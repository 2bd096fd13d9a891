"""``aiopipe demo | bench | inspect | report``: argument parsing and one-line errors.

User mistakes (a missing file, a corrupt record, a bad argument, a missing extra) print one line to
stderr and exit non-zero; only bugs show a traceback. ``demo`` and ``bench`` hand their arguments
untouched to the scripts they run, so ``aiopipe demo --help`` is the demo's own help.
"""

from __future__ import annotations

import argparse
import importlib
import runpy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import CorruptRecordError
from ._errors import CliError

__all__ = ["main"]

PROG = "aiopipe"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_BENCH_SCRIPT = "run_all.py"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with where to look), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in _pass_through():
            return _pass_through()[args[0]](args[1:])
        ns = _parser().parse_args(args)
        handler: Callable[[argparse.Namespace], int] = ns.handler
        return handler(ns)
    except CliError as exc:
        return _fail(str(exc))
    except CorruptRecordError as exc:
        return _fail(f"{exc.path}: corrupt record at offset {exc.offset}: {exc}")
    except OSError as exc:
        return _fail(_describe_os_error(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _describe_os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="See inside aiopipe input pipelines: demo, benchmarks, data files, traces.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    sub.add_parser("demo", help="run the training-loop demo (aiopipe demo --help for its options)")
    if _find_benchmarks() is not None:  # offered only where it can run: a source checkout
        sub.add_parser(
            "bench", help="run the benchmark suite and print its table (--help: its options)"
        )
    _add_inspect(sub)
    _add_report(sub)
    return parser


def _add_inspect(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="count, size and checksum the records of TFRecord or text files",
        description="For each file: record count, min/mean/max record size, checksum result "
        "and the first records. Exits 1 if a file is missing or corrupt.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--format",
        choices=("auto", "tfrecord", "text"),
        default="auto",
        help="file format (default: auto: TFRecord if the first record's length checksum matches)",
    )
    p.add_argument(
        "--compression",
        choices=("auto", "none", "GZIP", "ZLIB"),
        default="auto",
        help="TFRecord compression (default: auto, from the file's first bytes)",
    )
    p.add_argument("-n", "--show", type=_non_negative, default=3, help="records to show (3)")
    p.add_argument("--width", type=_positive, default=60, help="characters per record shown (60)")
    p.set_defaults(handler=_run_inspect)


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="draw a trace (open(trace=...)) as a PNG: stage activity and buffer fill",
        description="Draws per-stage busy/blocked/starved fractions and buffer fill over time "
        "from a trace written by pipe.open(trace=...). Needs: pip install 'aiopipe[report]'.",
    )
    p.add_argument("trace", metavar="TRACE", help="trace-event JSON file")
    p.add_argument("-o", "--output", help="PNG to write (default: TRACE with .png)")
    p.set_defaults(handler=_run_report)


def _run_inspect(ns: argparse.Namespace) -> int:
    from ._inspect import inspect_files

    compression = {"auto": "auto", "none": None}.get(ns.compression, ns.compression)
    return inspect_files(
        ns.files, fmt=ns.format, compression=compression, show=ns.show, width=ns.width
    )


def _run_report(ns: argparse.Namespace) -> int:
    from ._report import render_report

    out = Path(ns.output) if ns.output else Path(ns.trace).with_suffix(".png")
    render_report(Path(ns.trace), out)
    print(f"wrote {out}")
    return 0


def _run_demo(argv: list[str]) -> int:
    try:
        demo = importlib.import_module("aiopipe.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "aiopipe.demo":
            raise
        raise CliError("the demo is not installed with this copy of aiopipe") from None
    return int(demo.main(argv))


def _run_bench(argv: list[str]) -> int:
    folder = _find_benchmarks()
    if folder is None:
        raise CliError("the benchmark suite is not installed with this copy of aiopipe")
    script = folder / _BENCH_SCRIPT
    # The suite imports its workloads as top-level modules from its folder, as when it runs as a
    # script; they stay importable until it returns.
    sys.path.insert(0, str(script.parent))
    try:
        suite = runpy.run_path(str(script), run_name="aiopipe_bench")
        return int(suite["main"](argv))
    finally:
        sys.path.remove(str(script.parent))


def _find_benchmarks() -> Path | None:
    """``benchmarks/`` of the source checkout aiopipe runs from, if it does: the suite is not
    installed with the package, so an installed aiopipe does not offer ``bench`` at all."""
    import aiopipe

    folder = Path(aiopipe.__file__).resolve().parents[2] / "benchmarks"
    return folder if (folder / _BENCH_SCRIPT).is_file() else None


def _pass_through() -> dict[str, Callable[[list[str]], int]]:
    commands: dict[str, Callable[[list[str]], int]] = {"demo": _run_demo}
    if _find_benchmarks() is not None:
        commands["bench"] = _run_bench
    return commands


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
