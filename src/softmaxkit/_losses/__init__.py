"""The losses: one small module per family, each a loss object (options checked
once, ``loss`` / ``grad`` / ``loss_and_grad``) with thin public functions over it.

Conventions shared by every loss (see docs/losses.md):

* The class axis is ``axis=-1`` unless given (an int). Integer targets hold class
  indices and have the input's shape without the class axis; float targets (soft
  labels) have the input's shape.
* ``<loss>(...)`` returns the loss, ``<loss>_grad(...)`` the gradient of that loss
  with respect to the input (for ``reduction="none"``: of the sum of the per-row
  losses), and ``<loss>_and_grad(...)`` both from one pass. Losses are NumPy
  scalars (or arrays for "none") and gradients arrays of the input's shape, both in
  the input's float dtype (float16 computed in float32, ints as float64).
* Reductions: "none", "sum", "mean" with PyTorch's meanings (softmaxkit._reduction).
  An empty or all-ignored batch has a NaN mean and a zero gradient.
* Inputs are never modified. Bad arguments raise ValueError (TypeError for a wrong
  kind of argument) naming the argument and the offending value
  (softmaxkit._validation).
"""
from ._binary import (
    BCELoss,
    BCEWithLogitsLoss,
    binary_cross_entropy,
    binary_cross_entropy_and_grad,
    binary_cross_entropy_grad,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_and_grad,
    binary_cross_entropy_with_logits_grad,
)
from ._cross_entropy import (
    CrossEntropyLoss,
    NLLLoss,
    cross_entropy,
    cross_entropy_and_grad,
    cross_entropy_grad,
    nll_loss,
    nll_loss_and_grad,
    nll_loss_grad,
)
from ._divergence import KLDivLoss, entropy, kl_div, kl_div_and_grad, kl_div_grad, perplexity

__all__ = [
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    "cross_entropy",
    "cross_entropy_grad",
    "cross_entropy_and_grad",
    "nll_loss",
    "nll_loss_grad",
    "nll_loss_and_grad",
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "binary_cross_entropy_and_grad",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_grad",
    "binary_cross_entropy_with_logits_and_grad",
    "kl_div",
    "kl_div_grad",
    "kl_div_and_grad",
    "entropy",
    "perplexity",
]
