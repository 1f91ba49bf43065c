"""Vocab-parallel cross-entropy on torch.distributed: 2 and 4 gloo processes on the
CPU (torch.multiprocessing, spawn), vocabularies that do not divide evenly, equal
to the single-process result (float64 to 1e-12), loss, outputs and gradients."""
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)
import torch.multiprocessing as mp  # noqa: E402

from softmaxkit.torch import (  # noqa: E402
    vocab_parallel_cross_entropy,
    vocab_parallel_linear_cross_entropy,
)
from softmaxkit.torch import fused_linear_cross_entropy_full  # noqa: E402

OUTPUTS = ("lse", "logprob", "entropy", "argmax")
CASES = [
    dict(),
    dict(label_smoothing=0.2, class_weight=True, ignore_index=3),
    dict(softcap=2.5, z_loss=0.03, temperature=0.8),
    dict(softcap=4.0, z_loss=0.01, label_smoothing=0.1, class_weight=True, reduction="none"),
    dict(reduction="sum", temperature=1.7),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_sizes(v, world, uneven):
    if uneven:  # very unequal shards: one class on rank 0, the rest spread
        sizes = [1] + [(v - 1) // (world - 1)] * (world - 1)
        sizes[-1] += v - sum(sizes)
        return sizes
    base = [v // world + (1 if r < v % world else 0) for r in range(world)]
    return base


def data(case, n=10, h=4, v=11):
    g = torch.Generator().manual_seed(7)
    x = 2 * torch.randn(n, h, generator=g, dtype=torch.float64)
    w = torch.randn(v, h, generator=g, dtype=torch.float64)
    b = torch.randn(v, generator=g, dtype=torch.float64)
    t = torch.randint(0, v, (n,), generator=g)
    ig = case.get("ignore_index", -100)
    t[::4] = ig
    cw = torch.rand(v, generator=g, dtype=torch.float64) + 0.3 if case.get("class_weight") else None
    up = torch.randn(n, generator=g, dtype=torch.float64)
    return x, w, b, t, cw, up


def objective(out, up, reduction):
    loss = (out.loss * up).sum() if reduction == "none" else 1.3 * out.loss
    return loss + 0.7 * out.z_loss.sum() - (up * out.logprob).sum() + 0.2 * out.entropy.sum()


def close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13, msg=lambda m: f"{what}: {m}")


def worker(rank, world, port):
    # One spawn of 4 processes (starting processes is most of this test's time): the
    # first two also form a 2-process group with even shards; all four run with
    # very unequal shards.
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        pair = dist.new_group([0, 1])
        if rank < 2:
            for case in CASES:
                run_case(rank, 2, False, dict(case), pair)
        for case in CASES:
            run_case(rank, world, True, dict(case), None)
    finally:
        dist.destroy_process_group()


def run_case(rank, world, uneven, case, group):
    x, w, b, t, cw, up = data(case)
    v = w.shape[0]
    sizes = shard_sizes(v, world, uneven)
    lo = sum(sizes[:rank])
    hi = lo + sizes[rank]
    case.pop("class_weight", None)
    reduction = case.get("reduction", "mean")
    kw = dict(class_weight=cw, outputs=OUTPUTS, group=group, **case)
    ref_kw = {k: a for k, a in kw.items() if k != "group"}

    # the single-process result
    xr, wr, br = (a.clone().requires_grad_(True) for a in (x, w, b))
    ref = fused_linear_cross_entropy_full(xr, wr, t, bias=br, **ref_kw)
    objective(ref, up, reduction).backward()

    # linear, offsets found by all-gathering the sizes (and once given explicitly)
    for start in (None, lo):
        xs = x.clone().requires_grad_(True)
        ws = w[lo:hi].clone().requires_grad_(True)
        bs = b[lo:hi].clone().requires_grad_(True)
        out = vocab_parallel_linear_cross_entropy(xs, ws, t, bias_shard=bs, vocab_start=start,
                                                  chunk_size=3, **kw)
        objective(out, up, reduction).backward()
        for name in ("loss", "z_loss", "lse", "logprob", "entropy"):
            close(getattr(out, name), getattr(ref, name), f"rank {rank} {case} {name}")
        assert torch.equal(out.argmax, ref.argmax) and out.accuracy == ref.accuracy
        close(xs.grad, xr.grad, f"rank {rank} {case} grad hidden")
        close(ws.grad, wr.grad[lo:hi], f"rank {rank} {case} grad weight shard")
        close(bs.grad, br.grad[lo:hi], f"rank {rank} {case} grad bias shard")

    # no per-row output: the forward forms the gradients in its one pass
    if reduction != "none":
        kw1 = dict(kw, outputs=())
        xr1, wr1 = (a.clone().requires_grad_(True) for a in (x, w))
        ref1 = fused_linear_cross_entropy_full(xr1, wr1, t, **{k: a for k, a in kw1.items() if k != "group"})
        (1.3 * ref1.loss).backward()
        xs, ws = x.clone().requires_grad_(True), w[lo:hi].clone().requires_grad_(True)
        out = vocab_parallel_linear_cross_entropy(xs, ws, t, **kw1)
        (1.3 * out.loss).backward()
        close(out.loss, ref1.loss, f"rank {rank} {case} one-pass loss")
        close(xs.grad, xr1.grad, f"rank {rank} {case} one-pass grad hidden")
        close(ws.grad, wr1.grad[lo:hi], f"rank {rank} {case} one-pass grad weight shard")

    # given logits, split by columns
    z = (x @ w.T + b)
    zr = z.clone().requires_grad_(True)
    eye = torch.eye(v, dtype=torch.float64)
    ref2 = fused_linear_cross_entropy_full(zr, eye, t, **ref_kw)  # logits @ I = logits
    objective(ref2, up, reduction).backward()
    zs = z[:, lo:hi].clone().requires_grad_(True)
    out2 = vocab_parallel_cross_entropy(zs, t, **kw)
    objective(out2, up, reduction).backward()
    for name in ("loss", "z_loss", "lse", "logprob", "entropy"):
        close(getattr(out2, name), getattr(ref2, name), f"rank {rank} logits {case} {name}")
    assert torch.equal(out2.argmax, ref2.argmax)
    close(zs.grad, zr.grad[:, lo:hi], f"rank {rank} logits {case} grad")


def test_equals_single_process_with_2_and_4_processes():
    assert shard_sizes(11, 2, False) == [6, 5] and shard_sizes(11, 4, True) == [1, 3, 3, 4]
    mp.spawn(worker, args=(4, free_port()), nprocs=4, join=True)


def test_needs_an_initialised_group():
    x = torch.randn(3, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        vocab_parallel_linear_cross_entropy(x, torch.randn(4, 2, dtype=torch.float64),
                                            torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits_shard must be 2-D"):
        vocab_parallel_cross_entropy(torch.randn(3), torch.tensor([0, 1, 2]))
