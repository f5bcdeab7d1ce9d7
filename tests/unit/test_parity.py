"""The parity criterion on synthetic logits: scale-aware bounds, ties, rankings, NaN, zero rows."""

from __future__ import annotations

import numpy as np
import pytest
from deploylab.services.modelzoo.parity import RTOL, Tolerance, compare_logits

TOL = Tolerance()


def logits(scale: float, seed: int = 0, rows: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 1000)).astype(np.float32) * scale


def test_float_noise_at_logits_of_1e4_passes_where_an_elementwise_bound_fails() -> None:
    expected = logits(5e3)
    noise = np.random.default_rng(1).standard_normal(expected.shape).astype(np.float32)
    actual = expected + noise * 2e-3  # ~1e-7 of the scale, as ONNX Runtime vs torch shows
    expected[0, 0], actual[0, 0] = 1.0, 1.007  # a near-zero logit off by 7e-3, |Δ| seen at scale 1.5e4
    assert not np.allclose(actual, expected, rtol=1e-3, atol=1e-5)
    comparison = compare_logits(actual, expected, TOL)
    assert comparison.failure is None
    assert comparison.max_abs_logit > 1e4
    assert comparison.max_scaled_error < 1e-5


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e4])
def test_a_head_scaled_by_one_percent_fails_at_any_logit_scale(scale: float) -> None:
    expected = logits(scale)
    comparison = compare_logits(expected * 1.01, expected, TOL)
    assert comparison.failure is not None and comparison.failure.startswith("worst logit: sample")
    assert comparison.max_scaled_error == pytest.approx(0.01, rel=1e-3)


def test_the_worst_logit_is_named_across_samples() -> None:
    expected = logits(10.0)
    bounds = [TOL.bound(float(np.abs(row).max())) for row in expected]
    actual = expected.copy()
    actual[0, 3] += 3 * bounds[0]  # the first failing sample, but not the worst
    actual[1, 7] += 10 * bounds[1]
    failure = compare_logits(actual, expected, TOL).failure
    assert failure is not None and failure.startswith("worst logit: sample 1, class 7:")


def test_a_top1_swap_beyond_ties_fails_even_within_the_value_bound() -> None:
    expected = logits(10.0, rows=1)
    first, second = np.argsort(-expected[0])[:2]
    bound = TOL.bound(float(np.abs(expected).max()))
    expected[0, second] = expected[0, first] - 1.5 * bound
    actual = expected.copy()
    actual[0, first] -= 0.8 * bound
    actual[0, second] += 0.8 * bound
    failure = compare_logits(actual, expected, TOL).failure
    assert failure is not None and "top-1" in failure


def test_a_swap_of_nearly_tied_classes_is_a_tie_not_a_failure() -> None:
    """Random-init networks emit nearly equal logits; float noise may reorder those."""
    expected = logits(1e-9, rows=1)
    order = np.argsort(-expected[0])
    bound = TOL.bound(float(np.abs(expected).max()))
    expected[0, order[1]] = expected[0, order[0]] - 0.1 * bound
    expected[0, order[5]] = expected[0, order[4]] - 0.1 * bound
    actual = expected.copy()
    actual[0, [order[0], order[1]]] = actual[0, [order[1], order[0]]]
    actual[0, [order[4], order[5]]] = actual[0, [order[5], order[4]]]
    assert np.argmax(actual) != np.argmax(expected)
    assert compare_logits(actual, expected, TOL).failure is None


def test_a_top5_change_beyond_ties_fails() -> None:
    expected = logits(10.0, rows=1)
    order = np.argsort(-expected[0])
    bound = TOL.bound(float(np.abs(expected).max()))
    expected[0, order[5]] = expected[0, order[4]] - 1.5 * bound
    actual = expected.copy()
    actual[0, order[4]] -= 0.8 * bound
    actual[0, order[5]] += 0.8 * bound
    failure = compare_logits(actual, expected, TOL).failure
    assert failure is not None and "top-5" in failure


def test_nan_fails_and_all_zero_rows_pass_only_when_equal() -> None:
    expected = logits(1.0)
    actual = expected.copy()
    actual[1, 10] = np.nan
    assert compare_logits(actual, expected, TOL).failure is not None
    zeros = np.zeros((1, 1000), dtype=np.float32)
    assert compare_logits(zeros, zeros, TOL).failure is None
    assert compare_logits(zeros + 1e-20, zeros, TOL).failure is not None
    assert compare_logits(zeros + 1e-20, zeros, Tolerance(atol=1e-12)).failure is None


@pytest.mark.parametrize(
    ("rtol", "atol"),
    [(0.0, 1e-6), (-RTOL, 1e-6), (0.2, 1e-6), (float("nan"), 1e-6), (RTOL, 0.0), (RTOL, 1.5)],
)
def test_nonsense_tolerances_are_refused(rtol: float, atol: float) -> None:
    with pytest.raises(ValueError, match="must be > 0 and at most"):
        Tolerance(rtol=rtol, atol=atol)
