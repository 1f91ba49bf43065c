"""``python -m softmaxkit``: the same command line as ``softmaxkit``."""
from .app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
