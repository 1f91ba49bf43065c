"""softmaxkit: softmax, sigmoid and cross-entropy done exactly right, on fused C kernels.

>>> import softmaxkit as smk
>>> smk.softmax([2.0, 3.0, 5.0])
array([0.04201007, 0.1141952 , 0.84379473])

The class axis is ``axis=-1`` everywhere. Results keep the input's float dtype
(float16 is computed in float32; ints and bools become float64). Inputs are never
modified. See docs/semantics.md for masked rows, infinities and NaN.
"""
from ._config import get_num_threads, set_num_threads
from ._softmax import (
    hardmax,
    log_sigmoid,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    sample,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    softplus,
)

# fused linear + cross-entropy
from ._linear_ce import linear_cross_entropy, linear_cross_entropy_and_grad

# losses
from ._losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    KLDivLoss,
    NLLLoss,
    binary_cross_entropy,
    binary_cross_entropy_and_grad,
    binary_cross_entropy_grad,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_and_grad,
    binary_cross_entropy_with_logits_grad,
    cross_entropy,
    cross_entropy_and_grad,
    cross_entropy_grad,
    entropy,
    kl_div,
    kl_div_and_grad,
    kl_div_grad,
    nll_loss,
    nll_loss_and_grad,
    nll_loss_grad,
    perplexity,
)

# estimator, data, explain
from .app.explain import explain, explain_sigmoid

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "get_num_threads",
    "set_num_threads",
    # softmax family
    "softmax",
    "log_softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid",
    "softplus",
    "hardmax",
    "softmax_backward",
    "log_softmax_backward",
    "sigmoid_backward",
    "sample",
    # losses: objects (options checked once) and functions
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
    # fused linear + cross-entropy
    "linear_cross_entropy",
    "linear_cross_entropy_and_grad",
    # estimator, data, explain
    "SoftmaxRegression",
    "datasets",
    "explain",
    "explain_sigmoid",
]


# SoftmaxRegression and datasets need scikit-learn and SciPy (about 0.8 s to import):
# loaded on first use (PEP 562), so `import softmaxkit` stays fast.
def __getattr__(name):
    if name == "SoftmaxRegression":
        from ._regression import SoftmaxRegression

        return SoftmaxRegression
    if name == "datasets":
        import importlib

        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"SoftmaxRegression", "datasets"})
