"""SPEC.md's worked examples ("Worked examples (exact values, float64)"), shared by the
tests that reproduce them from Python (test_softmax_examples) and through explain
(test_explain). SPEC prints 10 decimals, or 11 significant digits for tiny values."""

SPEC_SOFTMAX = [
    ([2, 3, 5], [0.0420100661, 0.1141951994, 0.8437947345]),
    ([2.33, -1.46, 0.56], [0.8382731438, 0.0189412862, 0.1427855700]),
    ([1.5, 0.8, -0.2], [0.5954972685, 0.2957151920, 0.1087875396]),
    # One article prints [0.665, 0.245, 0.090] for this input: that figure is wrong.
    ([2.0, 1.0, 0.5], [0.6285317192, 0.2312238976, 0.1402443832]),
    ([2, 3, 5, 6], [0.0127547817, 0.0346710914, 0.2561866396, 0.6963874872]),
    ([0.1, 10, 0.1], [5.0169647564e-05, 0.9998996607, 5.0169647564e-05]),
    ([-1000, -1000, -1000], [1 / 3, 1 / 3, 1 / 3]),
    ([123, 456, 789], [5.7527440570e-290, 2.3984878688e-145, 1.0]),
]
