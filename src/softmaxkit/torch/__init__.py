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
from ._linear_legacy import linear_cross_entropy
from ._modules import BCEWithLogitsLoss, CrossEntropyLoss, KLDivLoss, NLLLoss

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
]
