"""smk.explain / smk.explain_sigmoid: the SPEC's concepts and worked examples, step by step."""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import softmaxkit as smk

from spec_examples import SPEC_SOFTMAX


@pytest.mark.parametrize("logits, expected", SPEC_SOFTMAX)
def test_spec_worked_examples(logits, expected):
    e = smk.explain(logits)
    expected = np.array(expected)
    # the SPEC prints 10 decimals, or 11 significant digits for the tiny values
    err = np.abs(e.probabilities - expected)
    assert (err <= np.maximum(5.1e-11, 1e-10 * expected)).all(), (e.probabilities, expected)
    assert_allclose(np.exp(e.log_probabilities), e.probabilities, rtol=1e-13)
    # the table shows the probabilities to 10 significant digits
    text = str(e)
    for p in e.probabilities:
        assert f"{p:.10g}" in text


def test_article_example_every_step():
    """[1.5, 0.8, -0.2]: exps 4.4817, 2.2255, 0.8187, sum 7.5259 (SPEC)."""
    e = smk.explain([1.5, 0.8, -0.2], label=0)
    assert_allclose(e.naive_exp, [4.4817, 2.2255, 0.8187], atol=5e-5)
    assert math.floor(e.naive_sum * 1e4) / 1e4 == 7.5259
    assert e.max == 1.5
    assert_allclose(e.shifted, [0.0, -0.7, -1.7], atol=1e-15)
    assert_allclose(e.exp_shifted, np.exp([0.0, -0.7, -1.7]))
    assert_allclose(e.sum_exp_shifted, e.naive_sum / math.exp(1.5), rtol=1e-14)
    assert_allclose(e.naive_probabilities, e.probabilities, rtol=1e-14)
    assert e.naive_problem is None
    # cross-entropy = logsumexp - z_y = -log p_y, and the fused loss agrees
    assert_allclose(e.loss, -math.log(0.5954972685), rtol=1e-9)
    assert_allclose(e.loss, smk.cross_entropy(np.array([[1.5, 0.8, -0.2]]), np.array([0])), rtol=1e-12)
    assert_allclose(e.gradient, [0.5954972685 - 1, 0.2957151920, 0.1087875396], rtol=1e-9)
    text = str(e)
    for s in ("4.48169", "2.22554", "0.818731", "7.52596", "0.5954972685", "0.5183584772",
              "-0.4045027315", "p - onehot(label)"):
        assert s in text, s


def test_overflow_example_naive_versus_stable():
    """SPEC concept 3: naive softmax of [123, 456, 789] is [0, 0, nan]."""
    e = smk.explain([123, 456, 789])
    assert e.naive_probabilities[0] == 0 and e.naive_probabilities[1] == 0
    assert math.isnan(e.naive_probabilities[2])
    assert math.isinf(e.naive_sum)
    assert "overflows float64" in e.naive_problem and "nan" in e.naive_problem
    assert np.isfinite(e.probabilities).all()
    assert e.sum_exp_shifted >= 1.0
    assert "5.752744057e-290" in str(e)


def test_underflow_example_zero_over_zero():
    """SPEC concept 4: naive softmax of [-1000]*3 divides 0 by 0; stable gives 1/3."""
    e = smk.explain([-1000, -1000, -1000], label=2)
    assert e.naive_sum == 0.0
    assert np.isnan(e.naive_probabilities).all()
    assert "divides 0 by 0" in e.naive_problem
    assert_allclose(e.probabilities, [1 / 3] * 3, rtol=1e-15)
    assert_allclose(e.loss, math.log(3), rtol=1e-14)
    assert_allclose(e.gradient, [1 / 3, 1 / 3, -2 / 3], rtol=1e-14)


def test_float32_overflow_threshold():
    """SPEC concept 3: exp(50) ~ 5.18e21 fits float32, exp(89) overflows it."""
    e = smk.explain([50, 89], dtype=np.float32)
    assert e.probabilities.dtype == np.float32
    assert_allclose(e.naive_exp[0], 5.18e21, rtol=1e-3)
    assert np.isinf(e.naive_exp[1])
    assert "overflows float32" in e.naive_problem
    assert_allclose(e.probabilities, smk.softmax(np.array([50, 89], dtype=np.float32)))
    # the same logits are harmless in float64
    assert smk.explain([50, 89]).naive_problem is None


def test_plain_normalisation_versus_softmax():
    """SPEC concept 2: z / sum(z) of [2, 3, 5] is [0.2, 0.3, 0.5]; softmax widens the gaps."""
    e = smk.explain([2, 3, 5])
    assert_allclose(e.plain_normalisation, [0.2, 0.3, 0.5])
    assert_allclose(e.probabilities, [0.04201007, 0.11419519, 0.8437947], rtol=1e-6)
    assert e.probabilities[2] > e.plain_normalisation[2]
    assert "[0.2, 0.3, 0.5]" in str(e)
    assert smk.explain([-1, 2]).plain_normalisation is None


def test_shift_invariance():
    """SPEC concept 5: softmax(z - a) == softmax(z)."""
    z = np.array([1.5, 0.8, -0.2])
    for a in (-100.0, 3.0, 500.0):
        assert_allclose(smk.explain(z - a).probabilities, smk.explain(z).probabilities, rtol=1e-12)
        assert_allclose(smk.explain(z - a).shifted, smk.explain(z).shifted, atol=1e-12)


def test_temperature_and_hardmax():
    """SPEC concepts 1 and 6: T flattens or sharpens; T -> 0 approaches hardmax."""
    z = [2.0, 1.0, 0.5]
    cold, warm, hot = (smk.explain(z, temperature=t) for t in (0.05, 1.0, 10.0))
    assert_allclose(warm.probabilities, [0.6285317192, 0.2312238976, 0.1402443832], rtol=1e-9)
    assert_allclose(hot.probabilities, smk.softmax(np.array(z) / 10.0), rtol=1e-12)
    assert cold.entropy < warm.entropy < hot.entropy < math.log(3)
    assert_array_equal(warm.hardmax, [1, 0, 0])
    assert_allclose(cold.probabilities, warm.hardmax, atol=1e-8)
    assert "temperature T = 10" in str(hot)


def test_gradient_p_minus_y_at_given_probabilities():
    """SPEC concept 10: probabilities (0.34, 0.46, 0.20), true class 1 (1-based) -> (-0.66, 0.46, 0.20)."""
    e = smk.explain(np.log([0.34, 0.46, 0.20]), label=0)
    assert_allclose(e.probabilities, [0.34, 0.46, 0.20], rtol=1e-12)
    assert_allclose(e.gradient, [-0.66, 0.46, 0.20], rtol=1e-12)
    assert abs(e.gradient.sum()) < 1e-12


def test_cross_entropy_ignores_wrong_classes_squared_loss_does_not():
    """SPEC concept 8: label 3 (1-based), (0.2, 0.2, 0.6) and (0, 0.4, 0.6)."""
    with np.errstate(divide="ignore"):
        a = smk.explain(np.log([0.2, 0.2, 0.6]), label=2)
        b = smk.explain(np.log([0.0, 0.4, 0.6]), label=2)
    assert_allclose(a.loss, b.loss, rtol=1e-12)
    assert_allclose(a.loss, -math.log(0.6), rtol=1e-12)
    assert_allclose([a.squared_loss, b.squared_loss], [0.24, 0.32], rtol=1e-12)
    assert b.probabilities[0] == 0 and np.isneginf(b.log_probabilities[0])


def test_information_quantities():
    """SPEC concept 7: entropy -sum p log p; one-hot cross-entropy = self-information."""
    e = smk.explain([2.33, -1.46, 0.56], label=1)
    p = e.probabilities
    assert_allclose(e.entropy, -(p * np.log(p)).sum(), rtol=1e-12)
    assert_allclose(e.loss, -math.log(p[1]), rtol=1e-12)
    assert "self-information" in str(e)


def test_softmax_regression_prediction_example():
    """SPEC concept 12: o = (0.1, 10, 0.1) predicts class 2 (1-based), index 1."""
    e = smk.explain([0.1, 10, 0.1])
    assert int(np.argmax(e.hardmax)) == 1
    assert "prediction (argmax) = class 1" in str(e)


def test_two_classes_is_sigmoid_of_difference():
    """SPEC concept 11: softmax over two classes is the sigmoid of the logit difference."""
    e = smk.explain([0.7, -1.2])
    assert_allclose(e.probabilities[0], smk.sigmoid(0.7 - (-1.2)), rtol=1e-14)
    assert "sigmoid(z0 - z1) = sigmoid(1.9)" in str(e)


def test_explain_sigmoid_spec_values():
    """SPEC concept 11: sigmoid([2, 3, 5, 6]) to full precision; outputs need not sum to 1."""
    e = smk.explain_sigmoid([2, 3, 5, 6])
    expected = [0.8807970779778823, 0.9525741268224334, 0.9933071490757153, 0.9975273768433653]
    assert_allclose(e.probabilities, expected, rtol=1e-15)
    assert_allclose(e.one_minus, 1 - np.array(expected), rtol=1e-12)
    assert_allclose(e.log_probabilities, np.log(expected), rtol=1e-12)
    assert e.probabilities.sum() > 1
    text = str(e)
    assert "0.8807970779778823" in text and "need not sum to 1" in text


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(logits=[1, 2], label=2), ValueError, "label must be a class index in 0..1"),
        (dict(logits=[1, 2], label=1.0), TypeError, "label must be an int"),
        (dict(logits=[1, 2], label=True), TypeError, "label must be an int"),
        (dict(logits=[1, float("nan")]), ValueError, "NaN"),
        (dict(logits=[1, float("inf")]), ValueError, "finite"),
        (dict(logits=[-float("inf")] * 2), ValueError, "at least one finite"),
        (dict(logits=[]), ValueError, "non-empty"),
        (dict(logits=[[1, 2]]), ValueError, "1-D"),
        (dict(logits=["a", "b"]), TypeError, "real numbers"),
        (dict(logits=[1, 2], temperature=0), ValueError, "temperature"),
        (dict(logits=[1, 2], dtype=np.float16), ValueError, "float32 or float64"),
    ],
)
def test_bad_input(kwargs, exc, match):
    logits = kwargs.pop("logits")
    with pytest.raises(exc, match=match):
        smk.explain(logits, **kwargs)


def test_plot_writes_png(tmp_path):
    from matplotlib.image import imread

    path = tmp_path / "bars.png"
    fig = smk.explain([1.5, 0.8, -0.2]).plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 2 * img.shape[0]
    assert len(fig.axes) == 2
    # bar heights are the logits and the probabilities
    heights = [[p.get_height() for p in ax.patches] for ax in fig.axes]
    assert_allclose(heights[0], [1.5, 0.8, -0.2])
    assert_allclose(heights[1], smk.softmax([1.5, 0.8, -0.2]))
    smk.explain_sigmoid([2, 3]).plot(tmp_path / "sig.png")
    assert (tmp_path / "sig.png").read_bytes()[:4] == b"\x89PNG"


def test_import_does_not_load_matplotlib_or_sklearn():
    import subprocess
    import sys

    code = ("import sys, softmaxkit as smk; smk.explain([1, 2]); "
            "print('matplotlib' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
