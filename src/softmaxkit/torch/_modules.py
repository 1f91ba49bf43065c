"""The loss modules: torch's own ``nn`` loss classes with softmaxkit's forward.

Each subclasses the torch module of the same name, so the constructor, defaults,
buffers (``weight``, ``pos_weight``), ``state_dict`` and ``isinstance`` checks are
torch's; only ``forward`` calls :mod:`._functional` (a few lines each, as
Liger-Kernel's ``LigerCrossEntropyLoss`` over its function).
"""
from __future__ import annotations

import torch

from . import _functional as _f

__all__ = ["CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "KLDivLoss"]


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` on :func:`softmaxkit.torch.cross_entropy`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> loss_fn = smt.CrossEntropyLoss(label_smoothing=0.1)
    >>> x, y = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 2, 1, 0])
    >>> torch.allclose(loss_fn(x, y), torch.nn.CrossEntropyLoss(label_smoothing=0.1)(x, y))
    True
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _f.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(torch.nn.NLLLoss):
    """:class:`torch.nn.NLLLoss` on :func:`softmaxkit.torch.nll_loss`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> lp = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    >>> y = torch.tensor([0, 2, 1, 0])
    >>> torch.allclose(smt.NLLLoss()(lp, y), torch.nn.NLLLoss()(lp, y))
    True
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _f.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                           reduction=self.reduction)


class BCEWithLogitsLoss(torch.nn.BCEWithLogitsLoss):
    """:class:`torch.nn.BCEWithLogitsLoss` on :func:`softmaxkit.torch.binary_cross_entropy_with_logits`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> x, y = torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)
    >>> pw = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    >>> torch.allclose(smt.BCEWithLogitsLoss(pos_weight=pw)(x, y), torch.nn.BCEWithLogitsLoss(pos_weight=pw)(x, y))
    True
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _f.binary_cross_entropy_with_logits(input, target, self.weight,
                                                   pos_weight=self.pos_weight,
                                                   reduction=self.reduction)


class KLDivLoss(torch.nn.KLDivLoss):
    """:class:`torch.nn.KLDivLoss` on :func:`softmaxkit.torch.kl_div`.

    Examples
    --------
    >>> import torch, softmaxkit.torch as smt
    >>> lq = torch.log_softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    >>> p = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    >>> torch.allclose(smt.KLDivLoss(reduction="batchmean")(lq, p), torch.nn.KLDivLoss(reduction="batchmean")(lq, p))
    True
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _f.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
