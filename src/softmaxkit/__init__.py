"""softmaxkit: softmax, sigmoid and cross-entropy done exactly right, on fused C kernels.

>>> import softmaxkit as smk
>>> smk.softmax([2.0, 3.0, 5.0])
array([0.04201007, 0.1141952 , 0.84379473])

The class axis is ``axis=-1`` everywhere. Results keep the input's float dtype
(float16 is computed in float32; ints and bools become float64). Inputs are never
modified. See docs/semantics.md for masked rows, infinities and NaN.
"""
from typing import TYPE_CHECKING, Any

from ._config import get_num_threads, set_num_threads
from ._softmax import (
    hardmax,
    log_sigmoid,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    softplus,
)

# sampling and sparse softmax
from ._sampling import (
    Sample,
    gumbel_softmax,
    gumbel_softmax_backward,
    sample,
    sampling_probs,
)
from ._entmax import (
    entmax15,
    entmax15_backward,
    entmax_bisect,
    entmax_bisect_backward,
    entmax_loss,
    entmax_loss_and_grad,
    entmax_loss_grad,
    sparsemax,
    sparsemax_backward,
    sparsemax_loss,
    sparsemax_loss_and_grad,
    sparsemax_loss_grad,
)

# backward passes of logsumexp, log_sigmoid, softplus (beta, threshold)
from ._activation_grads import (
    log_sigmoid_backward,
    logsumexp_backward,
    softplus_backward,
)

# focal, poly-1 and hinge losses
from ._losses._focal import (
    focal_loss,
    focal_loss_and_grad,
    focal_loss_grad,
    multi_margin_loss,
    multi_margin_loss_and_grad,
    multi_margin_loss_grad,
    poly1_cross_entropy,
    poly1_cross_entropy_and_grad,
    poly1_cross_entropy_grad,
    sigmoid_focal_loss,
    sigmoid_focal_loss_and_grad,
    sigmoid_focal_loss_grad,
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

# calibration
from ._calibration import (
    ReliabilityCurve,
    TemperatureScaling,
    calibration_report,
    classwise_calibration_error,
    expected_calibration_error,
    reliability_curve,
)

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
    # sampling and sparse softmax
    "sample",
    "Sample",
    "sampling_probs",
    "gumbel_softmax",
    "gumbel_softmax_backward",
    "sparsemax",
    "entmax15",
    "entmax_bisect",
    "sparsemax_backward",
    "entmax15_backward",
    "entmax_bisect_backward",
    "sparsemax_loss",
    "sparsemax_loss_grad",
    "sparsemax_loss_and_grad",
    "entmax_loss",
    "entmax_loss_grad",
    "entmax_loss_and_grad",
    "logsumexp_backward",
    "log_sigmoid_backward",
    "softplus_backward",
    "focal_loss",
    "focal_loss_grad",
    "focal_loss_and_grad",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "sigmoid_focal_loss_and_grad",
    "poly1_cross_entropy",
    "poly1_cross_entropy_grad",
    "poly1_cross_entropy_and_grad",
    "multi_margin_loss",
    "multi_margin_loss_grad",
    "multi_margin_loss_and_grad",
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
    # calibration
    "expected_calibration_error",
    "classwise_calibration_error",
    "reliability_curve",
    "ReliabilityCurve",
    "TemperatureScaling",
    "calibration_report",
]


# SoftmaxRegression and datasets need scikit-learn and SciPy (about 0.8 s to import):
# loaded on first use (PEP 562), so `import softmaxkit` stays fast.
if TYPE_CHECKING:  # what mypy sees; at run time they load on first use (below)
    from . import datasets
    from .linear_model import SoftmaxRegression


def __getattr__(name: str) -> Any:
    if name == "SoftmaxRegression":
        from .linear_model import SoftmaxRegression

        return SoftmaxRegression
    if name == "datasets":
        import importlib

        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"SoftmaxRegression", "datasets"})
