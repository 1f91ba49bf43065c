r"""PyTorch integration: drop-in losses, softmaxes and loss modules on softmaxkit's kernels.

Functions with exactly the signatures and defaults of :mod:`torch.nn.functional`'s
(``cross_entropy``, ``nll_loss``, ``binary_cross_entropy_with_logits``, ``kl_div``,
``softmax``, ``log_softmax``, ``linear_cross_entropy``), and the modules
``CrossEntropyLoss``, ``NLLLoss``, ``BCEWithLogitsLoss``, ``KLDivLoss`` (subclasses of
torch's). On CPU float32/float64 tensors they run softmaxkit's kernels as registered
custom operators (``torch.ops.softmaxkit.*``, with fake implementations and
registered autograd): ``torch.compile(model, fullgraph=True)`` traces them with no
graph break, and their backward passes are differentiable again (``create_graph=True``,
gradient penalties, Hessian-vector products). Anything else (other devices,
bfloat16/float16, a target or weight that requires grad, shapes the kernels do not
take) is passed to torch's own function, so every call works. See docs/torch.md.

Softmax's relatives, the same way: ``softplus``, ``logsigmoid``, ``multi_margin_loss``,
``gumbel_softmax`` (torch's signatures), ``sigmoid_focal_loss`` (torchvision's), the
modules ``Softplus``, ``LogSigmoid``, ``MultiMarginLoss``, and, where torch has no
function, ``focal_loss``, ``poly1_cross_entropy``, ``sparsemax``, ``entmax15`` and
``entmax_bisect``.

This package imports torch; ``import softmaxkit`` never does (torch is the optional
``softmaxkit[torch]`` dependency).

Examples
--------
>>> import torch
>>> import softmaxkit.torch as smt
>>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
>>> target = torch.tensor([0, 1])
>>> loss = smt.CrossEntropyLoss()(logits, target)
>>> (g,) = torch.autograd.grad(loss, logits, create_graph=True)
>>> (loss + (g ** 2).sum()).backward()  # a gradient penalty: exact second derivatives
>>> torch.allclose(loss, torch.nn.functional.cross_entropy(logits, target))
True
"""
from ._functional import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    log_softmax,
    nll_loss,
    softmax,
)
from ._distributed import vocab_parallel_cross_entropy, vocab_parallel_linear_cross_entropy
from ._linear import (
    LinearCrossEntropyLoss,
    LinearCrossEntropyOutput,
    fused_linear_cross_entropy,
    fused_linear_cross_entropy_full,
)
from ._linear_legacy import linear_cross_entropy
from ._modules import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, NLLLoss
from . import _relatives
from ._relatives import (
    LogSigmoid,
    MultiMarginLoss,
    Softplus,
    entmax15,
    entmax_bisect,
    focal_loss,
    gumbel_softmax,
    logsigmoid,
    multi_margin_loss,
    poly1_cross_entropy,
    sigmoid_focal_loss,
    softplus,
    sparsemax,
)

__all__ = [
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "softmax",
    "log_softmax",
    "linear_cross_entropy",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
    # the language-model head: fused linear + cross-entropy, and across processes
    "fused_linear_cross_entropy",
    "fused_linear_cross_entropy_full",
    "LinearCrossEntropyLoss",
    "LinearCrossEntropyOutput",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_linear_cross_entropy",
]
# softmax's relatives: their module's list (issue 12)
__all__ += _relatives.__all__
