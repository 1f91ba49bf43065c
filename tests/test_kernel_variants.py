"""The SIMD variants of the C kernels (src/softmaxkit/_kernels/sk_isa.h, docs/kernels.md).

Each kernel file (softmax, losses, sampling, entmax) is compiled once per variant (on
x86-64: avx512bf16, avx512, avx2, avx_fma, avx, sse2); each extension runs the best one the CPU
supports, or the one named by the environment variable SOFTMAXKIT_SIMD, read at
import. Every variant must meet the accuracy claims, so the accuracy tests run again,
in a subprocess, under each variant this CPU runs (the variant of this process is covered by the run itself).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import numpy as np

from softmaxkit._kernels import _entmax as E
from softmaxkit._kernels import _losses as L
from softmaxkit._kernels import _sampling as D
from softmaxkit._kernels import _softmax as S

ROOT = Path(__file__).resolve().parent.parent
X86_VARIANTS = ("avx512bf16", "avx512", "avx2", "avx_fma", "avx", "sse2")
MODULES = {"_softmax": S, "_losses": L, "_sampling": D, "_entmax": E}

# The accuracy claims: mpmath oracles, "no worse than SciPy and PyTorch", the float32
# sums, the loss kernels against their NumPy twins, the 16-bit kernels, and the
# elementwise kernels (softplus, log_sigmoid, focal, hinge) against mpmath and twins.
ACCURACY_TESTS = [
    "tests/test_softmax_examples.py::test_oracle_float64",
    "tests/test_softmax_examples.py::test_logsumexp_keeps_dominated_terms",
    "tests/test_softmax_examples.py::test_random_rows_against_oracle_and_scipy",
    "tests/test_losses.py::test_mpmath_oracle",
    "tests/test_losses.py::test_float32_0_120_gives_120_not_inf",
    "tests/test_losses.py::test_float32_long_rows_keep_float64_accuracy",
    "tests/test_losses.py::test_hard_kernel_matches_twin",
    "tests/test_losses.py::test_soft_kernel_matches_twin",
    "tests/test_kernel_seam.py",
    "tests/test_kernel_elementwise.py",
    "tests/test_kernel_half.py",
    "tests/test_kernel_variants.py::test_target_gradient_does_not_cancel_with_huge_weights",
    # sampling: chi-square against float64 probabilities, equality with the sorting
    # twin, thread-count independence (the split row included); entmax: the sorting
    # twin, the entmax package, finite differences
    *(f"tests/test_sampling.py::{t}" for t in (
        "test_draw_frequencies_match_float64_probabilities", "test_kernel_equals_sorting_twin",
        "test_truncation_keeps_ties_at_each_threshold", "test_top_p_is_taken_after_top_k",
        "test_processed_distribution_matches_twin", "test_draws_stay_in_the_processed_support",
        "test_long_rows_match_twin", "test_tiny_temperature_shifts_before_scaling", "test_where_and_infinities",
        "test_logprobs_processed_and_raw", "test_generator_matches_kernel_uniforms",
        "test_per_row_seeds_do_not_depend_on_the_batch", "test_threads_do_not_change_draws",
        "test_rows_with_nothing_to_draw")),
    "tests/test_sampling_kernels.py",
    "tests/test_entmax.py",
]


def _env(simd: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SOFTMAXKIT_SIMD", None)
    if simd is not None:
        env["SOFTMAXKIT_SIMD"] = simd
    return env


def _python(code: str, simd: str | None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=_env(simd), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_every_module_runs_the_same_variant():
    runs = S.simd_variants()
    assert len(runs) >= 1 and all(m.simd_variants() == runs for m in MODULES.values())
    assert set(runs) <= set(X86_VARIANTS) or runs == ("baseline",)
    want = os.environ.get("SOFTMAXKIT_SIMD") or "auto"
    assert {m.simd_variant() for m in MODULES.values()} == {runs[0] if want == "auto" else want}


def test_auto_picks_the_best_variant_this_cpu_runs():
    res = _python(f"import importlib; ms = [importlib.import_module('softmaxkit._kernels.' + n) for n in {list(MODULES)!r}];"
                  "print(*[m.simd_variant() for m in ms], ms[0].simd_variants()[0])", "auto")
    assert res.returncode == 0, res.stderr
    names = res.stdout.split()
    assert len(names) == len(MODULES) + 1 and len(set(names)) == 1, names


@pytest.mark.parametrize("module", ["_sampling", "_entmax"])
def test_the_variable_reaches_every_module(module):
    # the sampling and entmax kernels were target_clones, which the variable could
    # not force: now each module takes the variant named
    want = S.simd_variants()[-1]
    res = _python(f"import softmaxkit._kernels.{module} as m; print(m.simd_variant())", want)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [want]
    res = _python(f"import softmaxkit._kernels.{module}", "avx9000")
    assert res.returncode != 0 and "SOFTMAXKIT_SIMD=avx9000 is not a SIMD variant" in res.stderr


@pytest.mark.parametrize("value, message", [
    ("avx9000", "SOFTMAXKIT_SIMD=avx9000 is not a SIMD variant of this build; expected one of: auto, "),
    ("AVX2", "SOFTMAXKIT_SIMD=AVX2 is not a SIMD variant of this build"),
])
def test_a_bad_value_fails_the_import_naming_the_variable(value, message):
    res = _python("import softmaxkit", value)
    assert res.returncode != 0
    assert f"ValueError: {message}" in res.stderr


def test_a_variant_this_cpu_cannot_run_is_refused():
    runs = set(S.simd_variants())
    missing = [v for v in X86_VARIANTS if v not in runs]
    if runs == {"baseline"} or not missing:
        pytest.skip("this CPU runs every variant of this build")
    res = _python("import softmaxkit", missing[0])
    assert res.returncode != 0
    assert f"SOFTMAXKIT_SIMD={missing[0]}: this CPU cannot run that variant" in res.stderr


@pytest.mark.parametrize("variant", X86_VARIANTS)
def test_accuracy_claims_hold_under_every_variant(variant):
    runs = S.simd_variants()
    if variant not in runs:
        pytest.skip(f"{variant}: not a variant this build has or this CPU runs ({', '.join(runs)})")
    if variant == S.simd_variant():
        pytest.skip(f"{variant} is this run's variant: the accuracy tests ran under it here")
    code = (
        "import sys, pytest\n"
        "from softmaxkit._kernels import _softmax as S, _losses as L, _sampling as D, _entmax as E\n"
        f"assert S.simd_variant() == L.simd_variant() == D.simd_variant() == E.simd_variant() == {variant!r}\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-o', 'addopts=', *{ACCURACY_TESTS!r}]))\n"
    )
    res = _python(code, variant, timeout=600)
    tail = res.stdout[-3000:] + res.stderr[-2000:]
    assert res.returncode == 0, f"accuracy tests under {variant}:\n{tail}"
    assert " passed" in res.stdout and " failed" not in res.stdout, tail


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_target_gradient_does_not_cancel_with_huge_weights(dtype):
    # one class: p = 1 and the exact gradient is 0 whatever the weight; the target
    # entry's terms (3.7e5 each) cancel, and rounding them to float32 one at a time
    # left 0.0125 (found by tests/test_fuzz.py); the kernels take it in float64
    x = np.zeros((2, 1), dtype)
    loss, roww = np.empty(2), np.empty(2)
    grad = np.full_like(x, np.nan)
    w = np.array([371762.0], np.float32 if dtype == np.float16 else dtype)
    L.ce_hard(x, np.zeros(2, np.int64), w, 0, False, 0.1, loss, roww, None, 1.0, grad, 2, 1, 1)
    np.testing.assert_array_equal(grad, 0.0)
    np.testing.assert_array_equal(loss, 0.0)
