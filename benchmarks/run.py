#!/usr/bin/env python
"""Run softmaxkit's benchmark suite (the same as ``python -m softmaxkit.bench``).

    python benchmarks/run.py                      # softmax family + cross-entropy, 1 and 2 threads
    python benchmarks/run.py --markdown benchmarks/RESULTS.md --json results.json
    python benchmarks/run.py --sections linear-ce # fused vs unfused linear + CE (heavy)
    python benchmarks/run.py --help

See benchmarks/README.md for what is measured and how to read the table.
"""
import sys

from softmaxkit.bench import main

if __name__ == "__main__":
    sys.exit(main())
