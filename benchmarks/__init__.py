"""softmaxkit's benchmarks (not installed with the package): ``python benchmarks/run.py``.

``harness``: timing, threads, machine description, report. ``sections``: what is
measured. ``run``: the command line. See README.md in this folder.
"""
