"""Linear models on softmaxkit's kernels: :class:`SoftmaxRegression`.

Layout (one concern per module):

- ``_objective.py``: the penalised multinomial objective (loss, gradient, logits),
  one implementation shared by every solver, calling a loss object.
- ``_solvers.py``: L-BFGS (SciPy) and the minibatch SGD / Adam loop.
- ``_data.py``: X, targets, weights, standardisation.
- ``_chunks.py``: rows read block by block from a ``.npy`` file (out of core).
- ``_persistence.py``: ``.npz`` save/load with validated, bounded reads.
- ``_threads.py``: the BLAS thread policy while fitting.
- ``_estimator.py``: the scikit-learn estimator.
"""
from ._chunks import NpyRows
from ._estimator import SoftmaxRegression
from ._persistence import ModelFileError

__all__ = ["SoftmaxRegression", "ModelFileError", "NpyRows"]
