"""Cross-entropy and friends: SPEC examples, mpmath oracles, the C kernels against
their NumPy twins, finite-difference gradients, properties, plumbing and errors.
Agreement with PyTorch is in test_losses_torch.py."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as smk
from softmaxkit import _kernels

from losses_reference import ce_hard_ref, ce_soft_ref

# ------------------------------------------------------------------ helpers


def fd_grad(f, x, h=1e-4):
    """4th-order central differences of a scalar function, entry by entry:
    (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        def at(d):
            y = x.copy()
            y[idx] += d
            return float(np.sum(f(y)))
        g[idx] = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    return g


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------ SPEC examples


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_article_gradient_example(dtype):
    # SPEC concept 10: softmax output (0.34, 0.46, 0.20), true class 1 (1-based) = index 0
    z = np.log(np.array([0.34, 0.46, 0.20])).astype(dtype)
    g = smk.cross_entropy_grad(z, 0)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, [-0.66, 0.46, 0.20], **tol(dtype))
    loss, g2 = smk.cross_entropy_and_grad(z, np.array(0))
    np.testing.assert_allclose(loss, -np.log(0.34), **tol(dtype))
    np.testing.assert_array_equal(g, g2)


def test_float32_0_120_gives_120_not_inf():
    z = np.array([0.0, 120.0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        naive = -np.log(smk.softmax(z)[0])
    assert naive == np.inf
    loss, g = smk.cross_entropy_and_grad(z, 0)
    assert loss.dtype == np.float32 and loss == np.float32(120.0)
    np.testing.assert_array_equal(g, np.array([-1.0, 1.0], dtype=np.float32))
    # batched and from the other side too
    zz = np.array([[0.0, 120.0], [120.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(smk.cross_entropy(zz, [0, 1], reduction="none"), [120.0, 120.0])


def test_squared_loss_vs_cross_entropy_example():
    # SPEC concept 8: label 3 (1-based), predictions (0.2, 0.2, 0.6) and (0, 0.4, 0.6)
    a = np.array([0.2, 0.2, 0.6])
    b = np.array([0.0, 0.4, 0.6])
    y = np.array([0.0, 0.0, 1.0])
    ce_a = smk.cross_entropy(a, 2, from_logits=False)
    ce_b = smk.cross_entropy(b, 2, from_logits=False)
    assert ce_a == ce_b == pytest.approx(-np.log(0.6), rel=1e-15)
    assert np.sum((a - y) ** 2) == pytest.approx(0.24)
    assert np.sum((b - y) ** 2) == pytest.approx(0.32)
    # the same with one-hot (soft) labels
    assert smk.cross_entropy(b, y, from_logits=False) == pytest.approx(-np.log(0.6), rel=1e-15)


def test_information_identities():
    # SPEC concept 7: H(y, y_hat) = -log y_hat[label]; KL = H(p, q) - H(p)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 5))
    p = smk.softmax(rng.normal(size=(4, 5)))
    q = smk.softmax(z)
    np.testing.assert_allclose(smk.cross_entropy(z, [0, 1, 2, 4], reduction="none"),
                               -np.log(q[np.arange(4), [0, 1, 2, 4]]), rtol=1e-13)
    h_pq = smk.cross_entropy(z, p, reduction="none")
    h_p = smk.entropy(p)
    kl = smk.kl_div(np.log(q), p, reduction="none").sum(axis=-1)
    np.testing.assert_allclose(h_pq, h_p + kl, rtol=1e-12)
    np.testing.assert_allclose(smk.entropy(z, from_logits=True), smk.entropy(q), rtol=1e-12)
    # minimising mean CE = maximising the likelihood: mean CE = -mean log-likelihood
    assert smk.cross_entropy(z, [0, 1, 2, 4]) == pytest.approx(-np.mean(np.log(q[np.arange(4), [0, 1, 2, 4]])))


def test_two_class_softmax_is_sigmoid_of_difference():
    # SPEC concept 11: softmax over two classes is a sigmoid of the logit difference
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 2)) * 5
    y = np.array([0, 1, 1, 0, 1, 0])
    ce = smk.cross_entropy(z, y, reduction="none")
    bce = smk.binary_cross_entropy_with_logits(z[:, 1] - z[:, 0], y.astype(float), reduction="none")
    np.testing.assert_allclose(ce, bce, rtol=1e-12)


def test_sigmoid_bce_example_values():
    # SPEC concept 11's sigmoid values, through BCE with logits at target 1: -log sigma(x)
    x = np.array([2.0, 3.0, 5.0, 6.0])
    s = np.array([0.8807970779778823, 0.9525741268224334, 0.9933071490757153, 0.9975273768433653])
    loss = smk.binary_cross_entropy_with_logits(x, np.ones(4), reduction="none")
    # -log(s) loses digits as s nears 1 (relative error ulp / (1 - s)); log1p(exp(-x)) does not
    np.testing.assert_allclose(loss, -np.log(s), rtol=1e-12)
    np.testing.assert_allclose(loss, np.log1p(np.exp(-x)), rtol=2e-16)
    np.testing.assert_allclose(smk.binary_cross_entropy_with_logits_grad(x, np.ones(4), reduction="sum"),
                               s - 1, rtol=1e-13)


# ------------------------------------------------------------------ mpmath oracles

# Generated with mpmath at 50 digits:
#   import mpmath as mp; mp.mp.dps = 50
#   ce = lambda z, y: mp.log(mp.fsum(mp.e ** mp.mpf(v) for v in z)) - mp.mpf(z[y])
#   mp.nstr(ce([0, -40], 0), 20), mp.nstr(ce([1000.0, 0.0, -1000.0], 1), 20), ...
ORACLES = [
    ([0.0, -40.0], 0, 4.2483542552915889863e-18),
    ([1000.0, 0.0, -1000.0], 1, 1000.0),
    ([2.0, 1.0, 0.1], 0, 0.41703001627783348315),
    ([1e-3, 2e-3, -5e-4, 0.0], 2, 1.3874198220983557145),
]


@pytest.mark.parametrize("z, y, expected", ORACLES)
def test_mpmath_oracle(z, y, expected):
    assert float(smk.cross_entropy(np.array(z), y)) == pytest.approx(expected, rel=4e-16, abs=0)
    # from the fused forward-backward kernel too
    loss, _ = smk.cross_entropy_and_grad(np.array(z), y)
    assert float(loss) == pytest.approx(expected, rel=4e-16, abs=0)


# ------------------------------------------------------------------ C kernel vs NumPy twin


def _edge_block(dtype):
    x = np.array([
        [1.0, 2.0, 3.0, 4.0],
        [-np.inf, 0.0, 1.0, -np.inf],      # masked classes
        [-np.inf, -np.inf, -np.inf, -np.inf],  # all -inf
        [np.inf, 0.0, np.inf, 1.0],        # two +inf share the mass
        [np.nan, 0.0, 1.0, 2.0],           # NaN row
        [1e30, -1e30, 0.0, 5.0],
        [0.0, 0.0, 0.0, 0.0],
        [7.0, 7.0, -1.0, 7.0],             # tied max
    ], dtype=dtype)
    t = np.array([3, 0, 1, 2, 1, 1, 2, 3], dtype=np.int64)
    return x, t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, 1])
def test_hard_kernel_matches_twin(dtype, eps, weighted, ignore):
    rng = np.random.default_rng(2)
    x, t = _edge_block(dtype)
    xr = rng.normal(size=(16, 4)).astype(dtype) * 3
    tr = rng.integers(0, 4, size=16)
    x = np.concatenate([x, xr])
    t = np.concatenate([t, tr])
    w = np.array([0.5, 0.0, 2.0, 1.0], dtype=dtype) if weighted else None
    gs = rng.uniform(0.1, 2.0, size=len(t))
    with np.errstate(invalid="ignore"):
        loss, roww, grad = _kernels.ce_hard_rows(x, t, weight=w, ignore_index=ignore, label_smoothing=eps,
                                            dloss=gs)
        rloss, rroww, rgrad = ce_hard_ref(x, t, w, ignore, eps, gs)
    np.testing.assert_allclose(loss, rloss, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-12)
    np.testing.assert_array_equal(roww, rroww)
    np.testing.assert_allclose(grad, rgrad, **tol(dtype))
    # the forward alone gives the same losses
    loss_f, roww_f, none = _kernels.ce_hard_rows(x, t, weight=w, ignore_index=ignore, label_smoothing=eps)
    assert none is None
    np.testing.assert_array_equal(loss_f, loss)
    np.testing.assert_array_equal(roww_f, roww)
    # in place over the logits gives the same gradient
    x2 = x.copy()
    loss2, _, g2 = _kernels.ce_hard_rows(x2, t, weight=w, ignore_index=ignore, label_smoothing=eps,
                                    dloss=gs, grad_out=x2)
    assert g2 is x2
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(x2, grad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_soft_kernel_matches_twin(dtype, eps, weighted):
    rng = np.random.default_rng(3)
    x, _ = _edge_block(dtype)
    x = np.concatenate([x, rng.normal(size=(10, 4)).astype(dtype) * 3])
    q = smk.softmax(rng.normal(size=x.shape) * 2).astype(dtype)
    q[1] = [0.0, 0.5, 0.5, 0.0]   # zero mass on the -inf classes: finite loss
    q[2] = [1.0, 0.0, 0.0, 0.0]
    w = np.array([0.5, 0.0, 2.0, 1.0], dtype=dtype) if weighted else None
    with np.errstate(invalid="ignore"):
        loss, grad = _kernels.ce_soft_rows(x, q, weight=w, label_smoothing=eps, dloss=0.7)
        rloss, rgrad = ce_soft_ref(x, q, w, eps, 0.7)
    np.testing.assert_allclose(loss, rloss, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-12)
    np.testing.assert_allclose(grad, rgrad, **tol(dtype))
    if eps == 0:
        assert np.isfinite(loss[1]) and loss[2] == np.inf
    loss_f, none = _kernels.ce_soft_rows(x, q, weight=w, label_smoothing=eps)
    assert none is None
    np.testing.assert_array_equal(loss_f, loss)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_degenerate_shapes(dtype):
    # rows = 0
    loss, roww, g = _kernels.ce_hard_rows(np.zeros((0, 5), dtype), np.zeros(0, np.int64), dloss=1.0)
    assert loss.shape == roww.shape == (0,) and g.shape == (0, 5)
    # C = 1: p = 1, loss 0, gradient 0
    loss, roww, g = _kernels.ce_hard_rows(np.array([[3.0], [-2.0]], dtype), np.array([0, 0]), dloss=1.0)
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    np.testing.assert_array_equal(g, [[0.0], [0.0]])
    # C = 0 with every row ignored
    loss, roww, g = _kernels.ce_hard_rows(np.zeros((3, 0), dtype), np.full(3, -1, np.int64), ignore_index=-1,
                                     dloss=1.0)
    np.testing.assert_array_equal(loss, 0.0)
    np.testing.assert_array_equal(roww, 0.0)
    # soft labels, C = 0 and rows = 0
    loss, g = _kernels.ce_soft_rows(np.zeros((2, 0), dtype), np.zeros((2, 0), dtype), dloss=1.0)
    np.testing.assert_array_equal(loss, 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernel_never_reads_out_of_range_labels(dtype):
    # Labels the Python layer would reject, handed to the kernel directly: NaN loss
    # and NaN gradient for those rows, the others untouched, and no crash.
    x = np.arange(12, dtype=dtype).reshape(4, 3)
    t = np.array([0, 3, -1, 2**62], dtype=np.int64)
    loss, roww, g = _kernels.ce_hard_rows(x, t, dloss=1.0)
    assert np.isfinite(loss[0]) and np.isnan(loss[1:]).all()
    np.testing.assert_array_equal(roww, [1.0, 0.0, 0.0, 0.0])
    assert np.isfinite(g[0]).all() and np.isnan(g[1:]).all()
    # the C seam checks sizes too
    with pytest.raises(ValueError, match="target"):
        smk._kernels._losses.ce_hard(x, t[:2], None, 0, False, 0.0, np.empty(4), np.empty(4), None,
                                     1.0, None, 4, 3, 1)
    with pytest.raises(TypeError, match="wrong element type"):
        smk._kernels._losses.ce_hard(x, t.astype(dtype), None, 0, False, 0.0, np.empty(4), np.empty(4),
                                     None, 1.0, None, 4, 3, 1)


@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7),
                 elements=st.floats(-50, 50)),
    data=st.data(),
)
def test_hypothesis_kernel_vs_twin_and_properties(x, data):
    rows, cols = x.shape
    t = np.array(data.draw(st.lists(st.integers(0, cols - 1), min_size=rows, max_size=rows)), np.int64)
    eps = data.draw(st.sampled_from([0.0, 0.1, 0.9]))
    loss, _, g = _kernels.ce_hard_rows(x, t, label_smoothing=eps, dloss=1.0)
    rloss, _, rg = ce_hard_ref(x, t, None, None, eps, 1.0)
    np.testing.assert_allclose(loss, rloss, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14)
    assert (loss >= 0).all()
    # every gradient row sums to 0 (softmax is shift invariant) ...
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)
    # ... and the loss is shift invariant
    loss2, _, g2 = _kernels.ce_hard_rows(x + 7.25, t, label_smoothing=eps, dloss=1.0)
    np.testing.assert_allclose(loss2, loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g2, g, atol=1e-12)


# ------------------------------------------------------------------ public semantics


def test_reductions_and_weights_by_hand():
    z = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0], [2.0, -1.0, 0.0]])
    y = np.array([1, 2, 0])
    w = np.array([1.0, 2.0, 0.5])
    nlp = -smk.log_softmax(z)[np.arange(3), y]
    np.testing.assert_allclose(smk.cross_entropy(z, y, reduction="none"), nlp, rtol=1e-14)
    assert smk.cross_entropy(z, y, reduction="sum") == pytest.approx(nlp.sum(), rel=1e-14)
    assert smk.cross_entropy(z, y, weight=w) == pytest.approx((w[y] * nlp).sum() / w[y].sum(), rel=1e-14)
    # sample_weight: each row's loss times its weight, "mean" over sample_weight * weight[y]
    sw = np.array([0.5, 2.0, 0.0])
    assert smk.cross_entropy(z, y, sample_weight=sw, reduction="sum") == pytest.approx((sw * nlp).sum())
    assert smk.cross_entropy(z, y, weight=w, sample_weight=sw) == pytest.approx(
        (sw * w[y] * nlp).sum() / (sw * w[y]).sum(), rel=1e-14)
    # sklearn's log_loss is the sample-weighted mean
    from sklearn.metrics import log_loss
    assert smk.cross_entropy(z, y, sample_weight=sw) == pytest.approx(
        log_loss(y, smk.softmax(z), sample_weight=sw, labels=[0, 1, 2]), rel=1e-12)
    # soft labels: "mean" divides by the rows (or the summed sample weights)
    q = smk.softmax(z * 0.3)
    per = -(q * smk.log_softmax(z)).sum(axis=1)
    assert smk.cross_entropy(z, q) == pytest.approx(per.mean(), rel=1e-14)
    assert smk.cross_entropy(z, q, sample_weight=sw) == pytest.approx((sw * per).sum() / sw.sum(), rel=1e-14)
    # ignore_index drops rows from the sum and from the mean
    assert smk.cross_entropy(z, [1, -100, 0], ignore_index=-100) == pytest.approx((nlp[0] + nlp[2]) / 2)


def test_empty_and_all_ignored_mean_is_nan_with_zero_grad():
    z = np.ones((3, 4))
    loss, g = smk.cross_entropy_and_grad(z, [5, 5, 5], ignore_index=5)
    assert np.isnan(loss)
    np.testing.assert_array_equal(g, 0.0)
    loss, g = smk.cross_entropy_and_grad(np.zeros((0, 4)), np.zeros(0, int))
    assert np.isnan(loss) and g.shape == (0, 4)
    assert smk.cross_entropy(np.zeros((0, 4)), np.zeros(0, int), reduction="sum") == 0.0
    # zero summed class weight: NaN mean, zero gradient (PyTorch's gradient is NaN here)
    loss, g = smk.cross_entropy_and_grad(z, [0, 0, 0], weight=[0.0, 1, 1, 1])
    assert np.isnan(loss)
    np.testing.assert_array_equal(g, 0.0)
    assert np.isnan(smk.nll_loss(np.zeros((0, 2)), np.zeros(0, int)))
    assert np.isnan(smk.binary_cross_entropy_with_logits(np.zeros(0), np.zeros(0)))


def test_from_probabilities_guard_and_zeros():
    p = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    loss = smk.cross_entropy(p, [0, 0, 0], from_logits=False, reduction="none")
    np.testing.assert_allclose(loss, [-np.log(1e-7), np.log(2), 0.0], rtol=1e-15)
    assert np.isfinite(loss).all()
    g = smk.cross_entropy_grad(p, [0, 0, 0], from_logits=False, reduction="sum")
    # below the 1e-7 floor the clip is flat: gradient 0; above it -1/p
    np.testing.assert_allclose(g, [[0.0, 0.0], [-2.0, 0.0], [-1.0, 0.0]])
    for dtype in (np.float32, np.float64):
        assert np.isfinite(smk.cross_entropy_grad(p.astype(dtype), [0, 0, 0], from_logits=False)).all()
    # probability input agrees with logits input where the floor is not reached
    z = np.random.default_rng(4).normal(size=(5, 3))
    y = np.array([0, 2, 1, 1, 0])
    np.testing.assert_allclose(smk.cross_entropy(smk.softmax(z), y, from_logits=False),
                               smk.cross_entropy(z, y), rtol=1e-12)


def test_from_probabilities_rejects_bad_rows():
    with pytest.raises(ValueError, match=r"row 1, class 0 is -0.1"):
        smk.cross_entropy([[0.5, 0.5], [-0.1, 1.1]], [0, 0], from_logits=False)
    with pytest.raises(ValueError, match=r"row 0 sums to 0.9"):
        smk.cross_entropy([[0.4, 0.5], [0.5, 0.5]], [0, 0], from_logits=False)
    with pytest.raises(ValueError, match="nan"):
        smk.cross_entropy([[np.nan, 0.5]], [0], from_logits=False)
    with pytest.raises(ValueError, match="sums to"):
        smk.entropy([0.2, 0.2])
    # within sqrt(eps) of 1 is accepted (float32: 3.5e-4)
    smk.cross_entropy(np.array([[0.5, 0.5001]], np.float32), [0], from_logits=False)


def test_nonfinite_logits():
    # masked (-inf) classes: finite loss unless the label is masked
    z = np.array([[-np.inf, 0.0, 0.0], [-np.inf, 0.0, 0.0]])
    loss, g = smk.cross_entropy_and_grad(z, [1, 0], reduction="none")
    np.testing.assert_allclose(loss, [np.log(2), np.inf])
    np.testing.assert_allclose(g, [[0.0, -0.5, 0.5], [-1.0, 0.5, 0.5]])
    # +inf logits: the limit where they grow together
    loss = smk.cross_entropy(np.array([[np.inf, np.inf, 0.0]]), [0], reduction="none")
    np.testing.assert_allclose(loss, [np.log(2)])
    # NaN stays in its row
    loss = smk.cross_entropy(np.array([[np.nan, 0.0], [0.0, 0.0]]), [0, 0], reduction="none")
    assert np.isnan(loss[0]) and loss[1] == pytest.approx(np.log(2))


def test_bce_clamp_and_stability():
    # PyTorch's clamp of each log at -100
    np.testing.assert_allclose(smk.binary_cross_entropy([0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0],
                                                       reduction="none"), [100.0, 100.0, 0.0, 0.0])
    g = smk.binary_cross_entropy_grad([0.0, 1.0], [1.0, 0.0], reduction="sum")
    np.testing.assert_allclose(g, [-1e12, 1e12], rtol=1e-8)
    # with logits: finite and accurate for any finite logit
    z = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    one = np.ones(5)
    loss = smk.binary_cross_entropy_with_logits(z, one, reduction="none")
    np.testing.assert_allclose(loss, [1000.0, 40.0, np.log(2), 4.248354255291589e-18, 0.0], rtol=1e-14)
    loss0 = smk.binary_cross_entropy_with_logits(z, 0 * one, reduction="none")
    np.testing.assert_allclose(loss0, [0.0, 4.248354255291589e-18, np.log(2), 40.0, 1000.0], rtol=1e-14)
    assert np.isfinite(smk.binary_cross_entropy_with_logits_grad(z, one)).all()
    # multi-label by shape, pos_weight per class
    z = np.random.default_rng(5).normal(size=(4, 3))
    y = (z > 0.2).astype(float)
    pw = np.array([1.0, 2.0, 3.0])
    per = pw * y * -np.log(smk.sigmoid(z)) - (1 - y) * np.log(1 - smk.sigmoid(z))
    np.testing.assert_allclose(smk.binary_cross_entropy_with_logits(z, y, pos_weight=pw, reduction="none"),
                               per, rtol=1e-12)


def test_kl_div_and_entropy():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    lq = np.log(np.array([[0.25, 0.75, 1e-300], [0.2, 0.3, 0.5]]))
    point = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - lq), 0)
    assert smk.kl_div(lq, p, reduction="sum") == pytest.approx(point.sum(), rel=1e-14)
    assert smk.kl_div(lq, p) == pytest.approx(point.mean(), rel=1e-14)
    assert smk.kl_div(lq, p, reduction="batchmean") == pytest.approx(point.sum() / 2, rel=1e-14)
    with np.errstate(divide="ignore"):
        assert smk.kl_div(lq, np.log(p), log_target=True, reduction="sum") == pytest.approx(point.sum(), rel=1e-14)
    # p = 0 term is 0 even where log q = -inf
    assert smk.kl_div(np.array([0.0, -np.inf]), np.array([1.0, 0.0]), reduction="sum") == 0.0
    assert smk.kl_div(lq[1], p[1], reduction="sum") == 0.0
    np.testing.assert_allclose(smk.entropy(p), [np.log(2), -(p[1] * np.log(p[1])).sum()], rtol=1e-14)
    assert smk.entropy([1.0, 0.0]) == 0.0
    assert smk.entropy(np.array([5.0, -np.inf]), from_logits=True) == 0.0
    assert smk.entropy(np.full((2, 3), 1000.0), axis=0, from_logits=True).shape == (3,)
    assert smk.perplexity(np.zeros((3, 7)), [0, 1, 2]) == pytest.approx(7.0)


def test_nll_matches_cross_entropy():
    z = np.random.default_rng(6).normal(size=(5, 4))
    y = np.array([0, 3, 3, 1, 2])
    w = np.array([1.0, 0.5, 2.0, 1.5])
    for kw in ({}, {"weight": w}, {"ignore_index": 3}, {"reduction": "none"}, {"reduction": "sum"}):
        lp = smk.log_softmax(z)
        np.testing.assert_allclose(smk.nll_loss(lp, y, **kw), smk.cross_entropy(z, y, **kw), rtol=1e-13)
        g_nll = smk.nll_loss_grad(lp, y, **kw)
        np.testing.assert_allclose(smk.log_softmax_backward(lp, g_nll), smk.cross_entropy_grad(z, y, **kw),
                                   atol=1e-14)


# ------------------------------------------------------------------ finite differences

FD_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=np.array([0.5, 1.0, 2.0, 0.25])),
    dict(label_smoothing=0.2, weight=np.array([0.5, 1.0, 2.0, 0.25])),
    dict(ignore_index=1, label_smoothing=0.1),
    dict(sample_weight=np.array([0.5, 2.0, 1.0]), weight=np.array([0.5, 1.0, 2.0, 0.25])),
]


@pytest.mark.parametrize("kw", FD_CASES)
def test_cross_entropy_grad_finite_differences(kw):
    rng = np.random.default_rng(7)
    z = rng.normal(size=(3, 4))
    y = np.array([0, 1, 3])
    g = smk.cross_entropy_grad(z, y, **kw)
    np.testing.assert_allclose(g, fd_grad(lambda v: smk.cross_entropy(v, y, **kw), z), atol=1e-9)
    kw_soft = {k: v for k, v in kw.items() if k != "ignore_index"}
    q = smk.softmax(rng.normal(size=(3, 4)))
    g = smk.cross_entropy_grad(z, q, **kw_soft)
    np.testing.assert_allclose(g, fd_grad(lambda v: smk.cross_entropy(v, q, **kw_soft), z), atol=1e-9)


def test_cross_entropy_from_probs_grad_finite_differences():
    rng = np.random.default_rng(8)
    p = smk.softmax(rng.normal(size=(3, 4)))
    y = np.array([2, 0, 1])
    # renormalise inside f so that perturbed inputs stay valid: d/dp of CE(p/sum p)
    # differs from d/dp of CE(p) only along p, which a check of the directional
    # derivative along a sum-preserving direction sees exactly.
    for kw in (dict(), dict(label_smoothing=0.3, weight=np.array([1.0, 2.0, 0.5, 1.0]))):
        g = smk.cross_entropy_grad(p, y, from_logits=False, **kw)
        d = rng.normal(size=p.shape)
        d -= d.mean(axis=1, keepdims=True)
        h = 1e-5
        f = lambda s: float(smk.cross_entropy(p + s * d, y, from_logits=False, **kw))
        fd = (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)
        assert np.sum(g * d) == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(ignore_index=2, weight=np.array([1.0, 3.0, 0.5]))])
def test_nll_grad_finite_differences(kw):
    lp = np.random.default_rng(9).normal(size=(4, 3))
    y = np.array([0, 2, 1, 2])
    np.testing.assert_allclose(smk.nll_loss_grad(lp, y, **kw), fd_grad(lambda v: smk.nll_loss(v, y, **kw), lp),
                               atol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_grads_finite_differences(reduction):
    rng = np.random.default_rng(10)
    p = rng.uniform(0.05, 0.95, size=(3, 2))
    y = rng.uniform(0, 1, size=(3, 2))
    w = rng.uniform(0.5, 2, size=(2,))
    g = smk.binary_cross_entropy_grad(p, y, weight=w, reduction=reduction)
    fd = fd_grad(lambda v: smk.binary_cross_entropy(v, y, weight=w, reduction=reduction), p, h=1e-5)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)
    z = rng.normal(size=(3, 2)) * 3
    pw = np.array([2.0, 0.5])
    g = smk.binary_cross_entropy_with_logits_grad(z, y, weight=w, pos_weight=pw, reduction=reduction)
    fd = fd_grad(lambda v: smk.binary_cross_entropy_with_logits(v, y, weight=w, pos_weight=pw,
                                                                reduction=reduction), z)
    np.testing.assert_allclose(g, fd, atol=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_grad_finite_differences(reduction, log_target):
    rng = np.random.default_rng(11)
    lq = smk.log_softmax(rng.normal(size=(3, 4)))
    p = smk.softmax(rng.normal(size=(3, 4)))
    t = np.log(p) if log_target else p
    g = smk.kl_div_grad(lq, t, log_target=log_target, reduction=reduction)
    fd = fd_grad(lambda v: smk.kl_div(v, t, log_target=log_target, reduction=reduction), lq)
    np.testing.assert_allclose(g, fd, atol=1e-10)


def test_cross_entropy_second_derivative_is_softmax_jacobian():
    # d2 CE / dz2 = diag(p) - p p^T: differentiate the analytic gradient numerically
    z = np.array([0.3, -1.2, 2.0, 0.1])
    p = smk.softmax(z)
    hess = np.stack([fd_grad(lambda v: smk.cross_entropy_grad(v, 2)[j], z) for j in range(4)])
    np.testing.assert_allclose(hess, np.diag(p) - np.outer(p, p), atol=1e-10)


# ------------------------------------------------------------------ plumbing matrix


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64])
@pytest.mark.parametrize("layout", ["contiguous", "readonly", "strided", "axis0"])
def test_plumbing_matrix(dtype, layout, num_threads):
    rng = np.random.default_rng(12)
    base = (rng.normal(size=(300, 130)) * 4).astype(dtype)  # 39000 elements: threads engage
    y = rng.integers(0, 130, size=300)
    w = rng.uniform(0.5, 2, size=130)
    kw = dict(weight=w, label_smoothing=0.1, ignore_index=7)
    ref_loss, ref_grad = smk.cross_entropy_and_grad(base.astype(np.float64), y, **kw)
    if layout == "contiguous":
        x, axis = base.copy(), -1
    elif layout == "readonly":
        x, axis = base.copy(), -1
        x.flags.writeable = False
    elif layout == "strided":
        x, axis = np.repeat(base, 2, axis=1)[:, ::2], -1
        assert not x.flags.c_contiguous
    else:
        x, axis = np.ascontiguousarray(base.T), 0
    before = x.copy()
    loss, grad = smk.cross_entropy_and_grad(x, y, axis=axis, **kw)
    np.testing.assert_array_equal(x, before)  # input not modified
    out_dtype = np.float64 if dtype == np.int64 else dtype
    assert loss.dtype == out_dtype and grad.dtype == out_dtype and grad.shape == x.shape
    if axis == 0:
        grad = grad.T
    rtol = {np.float16: 2e-3, np.float32: 1e-5}.get(dtype, 1e-12)
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
    np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=rtol * 1e-2)
    assert smk.cross_entropy(x, y, axis=axis, **kw) == loss
    np.testing.assert_array_equal(smk.cross_entropy_grad(x, y, axis=axis, **kw), grad.T if axis == 0 else grad)


def test_extra_batch_dims_and_axis(num_threads):
    rng = np.random.default_rng(13)
    z = rng.normal(size=(2, 5, 3, 4))  # class axis 1, like PyTorch's (N, C, d1, d2)
    y = rng.integers(0, 5, size=(2, 3, 4))
    loss = smk.cross_entropy(z, y, axis=1, reduction="none")
    assert loss.shape == (2, 3, 4)
    zl = np.moveaxis(z, 1, -1)
    np.testing.assert_allclose(loss, smk.cross_entropy(zl, y, reduction="none"), rtol=1e-14)
    g = smk.cross_entropy_grad(z, y, axis=1)
    np.testing.assert_allclose(np.moveaxis(g, 1, -1), smk.cross_entropy_grad(zl, y), rtol=1e-14)
    q = smk.softmax(rng.normal(size=z.shape), axis=1)
    np.testing.assert_allclose(smk.cross_entropy(z, q, axis=1, reduction="none"),
                               smk.cross_entropy(zl, np.moveaxis(q, 1, -1), reduction="none"), rtol=1e-14)
    # target of a 1-D input is a scalar; "none" then gives a scalar
    assert np.ndim(smk.cross_entropy(np.array([1.0, 2.0]), 1, reduction="none")) == 0


def test_soft_targets_and_probs_inputs_not_modified():
    rng = np.random.default_rng(14)
    z = rng.normal(size=(4, 3))
    q = smk.softmax(rng.normal(size=(4, 3)))
    p = smk.softmax(z)
    copies = [a.copy() for a in (z, q, p)]
    smk.cross_entropy_and_grad(z, q, label_smoothing=0.1)
    smk.cross_entropy_and_grad(p, q, from_logits=False)
    smk.binary_cross_entropy_and_grad(p, q)
    smk.binary_cross_entropy_with_logits_and_grad(z, q)
    smk.kl_div_and_grad(np.log(p), q)
    for a, b in zip((z, q, p), copies):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ bad input


def test_label_out_of_range_names_position_and_value():
    z = np.zeros((2, 3, 4))
    y = np.zeros((2, 3), int)
    y[1, 2] = 4
    with pytest.raises(ValueError, match=r"target\[1, 2\] = 4 is not a class index in \[0, 4\)"):
        smk.cross_entropy(z, y)
    y[1, 2] = -3
    with pytest.raises(ValueError, match=r"target\[1, 2\] = -3 .* or ignore_index=-100"):
        smk.cross_entropy(z, y, ignore_index=-100)
    with pytest.raises(ValueError, match=r"target\[1\] = 18446744073709551615"):
        smk.cross_entropy(np.zeros((2, 4)), np.array([0, 2**64 - 1], np.uint64))
    with pytest.raises(ValueError, match=r"target\[0, 0\] = 9"):
        smk.nll_loss(np.zeros((1, 2, 4)), np.full((1, 2), 9))
    with pytest.raises(ValueError, match=r"target\[0\] = 0 is not a class index in \[0, 0\)"):
        smk.cross_entropy(np.zeros((2, 0)), [0, 0])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(target=np.zeros(3, int)), ValueError, "target has shape"),
    (dict(target=np.zeros((2, 3))), ValueError, "target of class probabilities has shape"),
    (dict(target=np.zeros(2, bool)), TypeError, "bool"),
    (dict(target=np.array(["a", "b"])), TypeError, "target"),
    (dict(weight=[1.0, 2.0]), ValueError, "weight has shape"),
    (dict(weight=[1.0, -2.0, 1.0, 1.0]), ValueError, r"weight must be finite and >= 0, got -2.0 at weight\[1\]"),
    (dict(weight=[1.0, np.nan, 1.0, 1.0]), ValueError, "weight must be finite"),
    (dict(weight=[1.0, np.inf, 1.0, 1.0]), ValueError, "weight must be finite"),
    (dict(weight=["a", "b", "c", "d"]), TypeError, "weight"),
    (dict(sample_weight=[1.0, -1.0]), ValueError, "sample_weight"),
    (dict(sample_weight=[1.0, 1.0, 1.0]), ValueError, "sample_weight"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing must be in"),
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    (dict(label_smoothing=np.nan), ValueError, "label_smoothing"),
    (dict(label_smoothing="0.1"), TypeError, "label_smoothing"),
    (dict(reduction="avg"), ValueError, "reduction must be one of"),
    (dict(reduction=None), TypeError, "reduction"),
    (dict(reduction="batchmean"), ValueError, "reduction"),
    (dict(ignore_index=1.5), TypeError, "ignore_index"),
    (dict(ignore_index=0, target=np.full((2, 4), 0.25)), ValueError, "ignore_index"),
    (dict(axis=1.0), TypeError, "axis"),
    (dict(axis=5), np.exceptions.AxisError if hasattr(np, "exceptions") else Exception, "axis"),
    (dict(from_logits="yes"), TypeError, "from_logits"),
    (dict(input=np.float64(1.0)), ValueError, "at least one dimension"),
    (dict(input=np.zeros((2, 4), complex)), TypeError, "input"),
])
def test_cross_entropy_bad_arguments(kwargs, exc, match):
    args = dict(input=np.zeros((2, 4)), target=np.array([0, 1]))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        smk.cross_entropy(args.pop("input"), args.pop("target"), **args)
    for fn in (smk.cross_entropy_grad, smk.cross_entropy_and_grad):
        args = dict(input=np.zeros((2, 4)), target=np.array([0, 1]))
        args.update(kwargs)
        with pytest.raises(exc):
            fn(args.pop("input"), args.pop("target"), **args)


def test_other_losses_bad_arguments():
    with pytest.raises(ValueError, match="target must hold integer class indices, got dtype float64"):
        smk.nll_loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        smk.nll_loss(np.zeros((2, 3)), [0, 1], reduction="mean ")
    with pytest.raises(ValueError, match=r"probs must be in \[0, 1\], got 1.5 at probs\[1\]"):
        smk.binary_cross_entropy([0.5, 1.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="probs must be in"):
        smk.binary_cross_entropy([np.nan], [1.0])
    with pytest.raises(ValueError, match="target has shape"):
        smk.binary_cross_entropy_with_logits(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="pos_weight must be finite and >= 0"):
        smk.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=[1.0, -1, 1])
    with pytest.raises(ValueError, match="pos_weight with shape"):
        smk.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=[1.0, 1.0])
    with pytest.raises(ValueError, match="weight must be finite"):
        smk.binary_cross_entropy(np.zeros(3), np.zeros(3), weight=[np.inf, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"p must hold probabilities >= 0, got -0.5 at p\[1\]"):
        smk.kl_div(np.zeros(2), np.array([0.5, -0.5]))
    with pytest.raises(ValueError, match="reduction"):
        smk.kl_div(np.zeros(2), np.zeros(2), reduction="avg")
    with pytest.raises(TypeError, match="log_target"):
        smk.kl_div(np.zeros(2), np.zeros(2), log_target=None)
    with pytest.raises(ValueError, match="p holds probabilities"):
        smk.entropy([0.5, -0.5, 1.0])
    with pytest.raises(ValueError, match="target must be finite"):
        smk.cross_entropy(np.zeros((1, 2)), np.array([[np.nan, 1.0]]))


def test_float32_long_rows_keep_float64_accuracy():
    # float32 exps are summed in float within short chunks and in float64 across them:
    # a 200000-class row agrees with the float64 computation to float32 rounding.
    rng = np.random.default_rng(15)
    z = (rng.normal(size=(3, 200_000)) * 2).astype(np.float32)
    y = np.array([5, 199_999, 77])
    l32, g32 = smk.cross_entropy_and_grad(z, y, reduction="none")
    l64, g64 = smk.cross_entropy_and_grad(z.astype(np.float64), y, reduction="none")
    np.testing.assert_allclose(l32, l64, rtol=3e-7)
    np.testing.assert_allclose(g32, g64, rtol=3e-6, atol=1e-12)
    # exps below 1.6e-38 are flushed to 0 in float32: invisible in the loss
    zz = np.array([[0.0, -100.0], [0.0, -100.0]], dtype=np.float32)
    loss, g = smk.cross_entropy_and_grad(zz, [1, 0], reduction="none")
    np.testing.assert_array_equal(loss, np.array([100.0, 0.0], np.float32))
    np.testing.assert_array_equal(g, [[1.0, -1.0], [0.0, 0.0]])


@pytest.mark.parametrize("kw", [
    dict(),
    dict(weight=np.array([0.5, 1.0, 2.0]), label_smoothing=0.2),
    dict(ignore_index=1, label_smoothing=0.1, reduction="sum"),
    dict(sample_weight=np.array([1.0, 0.0, 2.0, 0.5]), reduction="none"),
])
@pytest.mark.parametrize("soft", [False, True])
def test_from_probabilities_equals_from_logits(kw, soft):
    # away from the 1e-7 floor, probabilities in give the logits' loss, and the chain
    # rule through softmax turns the probability gradient into the logits' gradient
    rng = np.random.default_rng(16)
    z = rng.normal(size=(4, 3))
    if soft:
        if "ignore_index" in kw:
            return
        y = smk.softmax(rng.normal(size=(4, 3)))
    else:
        y = np.array([0, 1, 2, 1])
    p = smk.softmax(z)
    np.testing.assert_allclose(smk.cross_entropy(p, y, from_logits=False, **kw),
                               smk.cross_entropy(z, y, **kw), rtol=1e-12)
    gp = smk.cross_entropy_grad(p, y, from_logits=False, **kw)
    np.testing.assert_allclose(smk.softmax_backward(p, gp), smk.cross_entropy_grad(z, y, **kw), atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_in_place_gradient_with_threads(dtype, num_threads):
    rng = np.random.default_rng(17)
    x = (rng.normal(size=(64, 1500)) * 3).astype(dtype)  # 96000 elements: threads engage
    t = rng.integers(0, 1500, size=64)
    t[::7] = -100
    w = rng.uniform(0.1, 2.0, size=1500).astype(dtype)
    gs = rng.uniform(0.5, 1.5, size=64)
    loss, roww, g = _kernels.ce_hard_rows(x, t, weight=w, ignore_index=-100, label_smoothing=0.05, dloss=gs)
    x2 = x.copy()
    loss2, roww2, g2 = _kernels.ce_hard_rows(x2, t, weight=w, ignore_index=-100, label_smoothing=0.05,
                                        dloss=gs, grad_out=x2)
    assert g2 is x2
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(roww2, roww)
    np.testing.assert_array_equal(x2, g)
    rl, rw, rg = ce_hard_ref(x, t, w, -100, 0.05, gs)
    np.testing.assert_allclose(loss, rl, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(g, rg, **tol(dtype))


# ---------------------------------------------------------------- out= for gradients

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_grad_out(dtype):
    rng = np.random.default_rng(77)
    z = rng.normal(size=(6, 9)).astype(dtype)
    t = rng.integers(0, 9, size=6)
    q = smk.softmax(rng.normal(size=(6, 9))).astype(dtype)
    kw = dict(weight=np.linspace(0.5, 2, 9).astype(dtype), label_smoothing=0.1)
    want_loss, want = smk.cross_entropy_and_grad(z, t, **kw)
    # direct: the kernel writes into out
    out = np.full_like(z, np.nan)
    loss, got = smk.cross_entropy_and_grad(z, t, out=out, **kw)
    assert got is out and loss == want_loss
    np.testing.assert_array_equal(out, want)
    assert smk.cross_entropy_grad(z, t, out=out, **kw) is out
    # in place over the logits: same loss, gradient where the logits were
    zz = z.copy()
    loss2, g2 = smk.cross_entropy_and_grad(zz, t, out=zz, **kw)
    assert g2 is zz and loss2 == want_loss
    np.testing.assert_array_equal(zz, want)
    # non-contiguous out, class axis not last, soft labels: computed, then copied in
    nc = np.empty((9, 6), dtype).T
    smk.cross_entropy_grad(z, t, out=nc, **kw)
    np.testing.assert_array_equal(nc, want)
    zt = np.ascontiguousarray(z.T)
    out_t = np.empty_like(zt)
    smk.cross_entropy_grad(zt, t, axis=0, out=out_t, **kw)
    np.testing.assert_allclose(out_t, want.T, rtol=1e-6)
    out_s = np.empty_like(z)
    np.testing.assert_array_equal(smk.cross_entropy_grad(z, q, out=out_s), smk.cross_entropy_grad(z, q))
    # checked like every out=
    with pytest.raises(ValueError, match="out has shape"):
        smk.cross_entropy_grad(z, t, out=np.empty((6, 8), dtype))
    with pytest.raises(ValueError, match="out has dtype"):
        smk.cross_entropy_grad(z, t, out=np.empty((6, 9), np.float16))
    h = np.empty((6, 9), np.float16)
    smk.cross_entropy_grad(z.astype(np.float16), t, out=h)
    np.testing.assert_allclose(h, smk.cross_entropy_grad(z.astype(np.float16), t), rtol=1e-3)
