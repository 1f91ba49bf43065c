"""A user's script over softmaxkit's public API, checked by `mypy --strict` in
tests/test_typing.py: every call here must type-check with no error and no Any leak
into the user's own annotated variables."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import softmaxkit as smk

x: NDArray[np.float64] = np.array([[2.0, 3.0, 5.0], [1.0, 0.0, -1.0]])
y = np.array([2, 0])

p: NDArray[np.floating] = smk.softmax(x, axis=-1, temperature=0.5)
lp: NDArray[np.floating] = smk.log_softmax(x, where=x > 0)
lse: NDArray[np.floating] = smk.logsumexp(x, axis=(0, 1), keepdims=True)
lse_s, sign = smk.logsumexp(x, b=np.ones(3), return_sign=True)
s: NDArray[np.floating] = smk.sigmoid(x)
h: NDArray[np.floating] = smk.hardmax(x)
dx: NDArray[np.floating] = smk.softmax_backward(p, np.ones_like(p))
draw = smk.sample(x[0], temperature=0.7, rng=0)

loss = smk.cross_entropy(x, y, label_smoothing=0.1)
value: float = float(loss)
loss2, grad = smk.cross_entropy_and_grad(x, y, weight=[1.0, 2.0, 1.0], reduction="sum")
g: NDArray[np.floating] = grad
per_row = smk.cross_entropy(x, y, reduction="none")
bce = float(smk.binary_cross_entropy_with_logits(x, (x > 0).astype(float), pos_weight=[1.0, 2.0, 1.0]))
kl = float(smk.kl_div(lp, p, reduction="batchmean"))
ent = smk.entropy(p)

ce = smk.CrossEntropyLoss(ignore_index=-100, reduction="mean")
l3, g3 = ce.loss_and_grad(x, y)
l4, g4 = ce.loss_gradient(np.ascontiguousarray(x), y.astype(np.int64))
total: float = l4

n: int = smk.get_num_threads()
smk.set_num_threads(n)
print(value, loss2, g, per_row, bce, kl, ent, l3, g3, g4, total, lse, lse_s, sign, s, h, dx, draw)

# explain and the data sets (softmaxkit.app.explain, softmaxkit.datasets)
from softmaxkit import datasets  # noqa: E402

ex = smk.explain([1.5, 0.8, -0.2], label=0, temperature=1.0)
ex_p: NDArray[np.floating] = ex.probabilities
ex_loss: float | None = ex.loss
sg = smk.explain_sigmoid([2.0, 3.0])
ds = datasets.load("digits")
X_d, y_d = ds
n_rows: int = ds.n_samples
print(ex_p, ex_loss, sg.probabilities, X_d, y_d, n_rows)

clf = smk.SoftmaxRegression(alpha=1e-3).fit(x, y)
proba: NDArray[np.floating] = clf.predict_proba(x)
print(proba)
