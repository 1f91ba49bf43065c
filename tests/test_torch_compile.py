"""torch.compile(fullgraph=True) over softmaxkit.torch: a model using every module and
function traces with no graph break and no warning, runs our custom ops, and trains
step for step as torch's modules do.

The tests use the "aot_eager" backend: Dynamo traces the Python (graph breaks would
raise under fullgraph=True) and AOTAutograd traces forward and backward through the
ops' fake implementations and registered autograd, which is all that our ops take
part in; inductor's code generation (minutes of C++ compiling on this machine) only
lowers the surrounding torch ops. benchmarks/torch_bench.py trains with inductor.
"""
import importlib.util
import logging
import pathlib
import warnings

import pytest

torch = pytest.importorskip("torch")
smt = pytest.importorskip("softmaxkit.torch")

from softmaxkit.torch import _ops  # noqa: E402

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "torch_bench.py"


def _bench():
    spec = importlib.util.spec_from_file_location("torch_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class EveryModule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
        self.ce = smt.CrossEntropyLoss(label_smoothing=0.1)
        self.nll = smt.NLLLoss(weight=torch.tensor([1.0, 2.0, -0.5, 1.0]))
        self.bce = smt.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 0.5, 3.0]))
        self.kl = smt.KLDivLoss(reduction="batchmean")

    def forward(self, x, y, y_multi, p):
        z = self.body(x)
        log_p = smt.log_softmax(z, 1)
        return (self.ce(z, y) + self.nll(log_p, y) + self.bce(z, y_multi) + self.kl(log_p, p)
                + smt.softmax(z, 1)[:, 0].sum() + smt.cross_entropy(z, p, reduction="sum"))


def _data(n, gen):
    return (torch.randn(n, 6, generator=gen), torch.randint(0, 4, (n,), generator=gen),
            torch.rand(n, 4, generator=gen), torch.softmax(torch.randn(n, 4, generator=gen), 1))


def test_fullgraph_compile_of_every_module_no_break_no_warning(monkeypatch, caplog):
    calls = []
    for name in ["_np_ce_rows", "_np_nll_rows", "_np_bce_with_logits", "_np_kl_div", "_np_softmax"]:
        real = getattr(_ops, name)
        monkeypatch.setattr(_ops, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = EveryModule()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    gen = torch.Generator().manual_seed(1)
    with warnings.catch_warnings(record=True) as record, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        for n in (10, 7):  # a second batch size: the fake implementations take symbolic shapes
            args = _data(n, gen)
            loss = compiled(*args)
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            ref = model(*args)
            ref.backward()
            torch.testing.assert_close(loss, ref)
            for g, p in zip(grads, model.parameters()):
                torch.testing.assert_close(g, p.grad)
            model.zero_grad()
    assert [str(w.message) for w in record] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert not torch._dynamo.utils.counters["graph_break"]
    assert {"_np_ce_rows", "_np_nll_rows", "_np_bce_with_logits", "_np_kl_div", "_np_softmax"} <= set(calls)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_compiled_training_matches_torch_modules(dtype, rtol):
    bench = _bench()
    torch._dynamo.reset()
    ours = bench.train_compiled("softmaxkit", dtype, steps=6, backend="aot_eager")
    ref = bench.train_compiled("torch", dtype, steps=6, backend="aot_eager")
    assert ours[-1] < ours[0]  # it learns
    for a, b in zip(ours, ref):
        assert a == pytest.approx(b, rel=rtol, abs=0)
