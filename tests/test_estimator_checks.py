"""scikit-learn's estimator conformance checks, for each solver."""
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxkit import SoftmaxRegression


# Few epochs keep the minibatch instances fast; the checks' toy problems do not need
# more, and the ConvergenceWarning that short runs raise is expected there.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [
        SoftmaxRegression(),
        SoftmaxRegression(solver="sgd", max_iter=20, random_state=0),
        SoftmaxRegression(solver="adam", max_iter=20, standardize=True, random_state=0),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
