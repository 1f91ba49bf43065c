"""Shared test set-up: a deterministic Hypothesis profile, thread-count fixtures."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Deterministic property tests: CI and developers see the same examples, and no
# test's runtime depends on a wall-clock deadline on a loaded 2-core machine.
settings.register_profile(
    "softmaxkit",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("SOFTMAXKIT_HYPOTHESIS_PROFILE", "softmaxkit"))


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def num_threads(request):
    """Run a test with 1 and with 2 kernel threads, restoring the setting after."""
    import softmaxkit as smk

    old = smk.get_num_threads()
    smk.set_num_threads(request.param)
    yield request.param
    smk.set_num_threads(old)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
