"""``softmaxkit bench``: run the benchmark harness of a source checkout.

The benchmark harness is not installed with softmaxkit: it lives in the repository's
``benchmarks/`` folder (``python benchmarks/run.py``). ``softmaxkit bench ARGS`` looks
for ``benchmarks/run.py``

1. in the source checkout this softmaxkit was imported from (an editable install,
   ``pip install -e .``, as ``make`` sets up), then
2. in the current directory (a checkout beside a regular install),

and runs it with ARGS. Without a checkout it says, in one line, where the
benchmarks live.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

__all__ = ["find_benchmarks", "run"]

NOT_FOUND = ("the benchmarks live in the repository's benchmarks/ folder, which this "
             "installation does not have: run 'python benchmarks/run.py' in a softmaxkit "
             "source checkout")


def find_benchmarks() -> Path | None:
    """The ``benchmarks`` folder of a source checkout, or None."""
    package_root = Path(__file__).resolve().parents[3]  # <checkout>/src/softmaxkit/app/
    for root in (package_root, Path.cwd()):
        folder = root / "benchmarks"
        if (folder / "run.py").is_file() and (folder / "harness.py").is_file():
            return folder
    return None


def run(argv: list[str]) -> int:
    """Run ``benchmarks/run.py`` with ``argv``; return its exit status.

    Raises
    ------
    FileNotFoundError
        No checkout found (the message says where the benchmarks live).
    """
    folder = find_benchmarks()
    if folder is None:
        raise FileNotFoundError(NOT_FOUND)
    # Import the folder as the package `benchmarks` (its modules import each other so),
    # from this path even when another `benchmarks` is importable.
    spec = importlib.util.spec_from_file_location(
        "benchmarks", folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{folder}: cannot import the benchmarks from here")
    package = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = package
    spec.loader.exec_module(package)
    runner = importlib.import_module("benchmarks.run")
    return int(runner.main(list(argv)) or 0)
