"""A user's script over softmaxkit.linear_model, checked by `mypy --strict` in
tests/test_regression.py::test_mypy_strict_on_estimator_script."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from softmaxkit.linear_model import ModelFileError, NpyRows, SoftmaxRegression

X = np.random.default_rng(0).normal(size=(20, 3))
y = np.arange(20) % 2
clf = SoftmaxRegression(alpha=0.5, dtype=np.float32, random_state=0).fit(X, y)
P: NDArray[np.floating] = clf.predict_proba(X)
labels = clf.predict(X)
acc: float = clf.score(X, y)
clf.save("model.npz", metadata={"data": "toy"})
back: SoftmaxRegression = SoftmaxRegression.load("model.npz")
err: type[ValueError] = ModelFileError
print(P, labels, acc, back, err, NpyRows)
