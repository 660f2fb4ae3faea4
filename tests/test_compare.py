"""The statistics behind a failed comparison say what is wrong, never that nothing is."""

from __future__ import annotations

import numpy as np
import pytest

from grader.compare import CheckFailure, assert_close


def _details(got, want, **options) -> str:
    with pytest.raises(CheckFailure) as failure:
        assert_close(np.asarray(got, float), np.asarray(want, float), **options)
    return failure.value.details


def test_relative_error_is_not_reported_as_zero_when_only_zeros_were_expected():
    details = _details([0.5, -1.0, 0.0], [0.0, 0.0, 0.0])
    assert "0.000e+00" not in details
    assert "max rel error: none (every value off is where 0 was expected)" in details


def test_relative_error_is_that_of_the_values_off_not_of_the_right_ones():
    # 1.0 vs 1.0 is right; 3.0 where 0 was expected is off: a relative error of the right
    # value (0) must not stand in for the wrong one's.
    details = _details([1.0, 3.0], [1.0, 0.0])
    assert "none (every value off is where 0 was expected)" in details
    details = _details([1.0, 3.0], [1.0, 2.0])
    assert "max rel error (values off, where expected != 0): 5.000e-01" in details
