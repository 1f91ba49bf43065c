"""`make demo`: what softmax does to the articles' numbers, then a classifier on digits.

Runs the softmaxkit command line (the same ``main`` the ``softmaxkit`` script calls):

1. ``softmaxkit explain 1.5 0.8 -0.2 --label 0 --plot ...``: the articles'
   step-by-step table, cross-entropy and gradient p - y, and a bar chart.
2. ``softmaxkit explain 123 456 789``: where the naive formula gives NaN.
3. ``softmaxkit train --data digits --out ... --report ...``: softmax regression on
   scikit-learn's bundled digits, with training curves, a confusion matrix and
   metrics written to the report folder.
4. ``softmaxkit predict``: the saved model on every row of the digits; the
   accuracy line says that 1347 of them were its training rows.

Everything goes to ``demo-out/`` (or the folder given as the first argument).
"""
from __future__ import annotations

import sys
from pathlib import Path

from softmaxkit.app.cli import main


def step(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}\n$ softmaxkit {' '.join(argv)}\n", flush=True)
    status = main(argv)
    if status != 0:
        raise SystemExit(f"demo: 'softmaxkit {' '.join(argv)}' failed with status {status}")


def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report"
    model = out / "digits-model.npz"
    step("softmax of the articles' logits, step by step",
         ["explain", "1.5", "0.8", "-0.2", "--label", "0", "--plot", str(out / "softmax-bars.png")])
    step("why the max is subtracted first", ["explain", "123", "456", "789"])
    step("softmax regression on the digits (8x8 images, 10 classes)",
         ["train", "--data", "digits", "--out", str(model), "--report", str(report)])
    step("predictions of the saved model", ["predict", "--model", str(model), "--data", "digits",
                                            "--output", str(out / "predictions.csv")])
    print(f"\nThe report is in {report.resolve()}/: "
          f"{', '.join(sorted(p.name for p in report.iterdir()))}")
    print(f"Also written: {(out / 'softmax-bars.png').resolve()}, {model.resolve()}, "
          f"{(out / 'predictions.csv').resolve()}")


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo-out"))
