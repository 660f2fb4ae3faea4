"""Hidden checks for im2col and col2im: layout against F.unfold, overlap counts, adjointness."""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

# (N, C, H, W, filter_h, filter_w, stride, pad)
GEOMETRIES = {
    "5x5-k3-s1-p0": (2, 3, 5, 5, 3, 3, 1, 0),
    "7x5-k3-s2-p1": (2, 2, 7, 5, 3, 3, 2, 1),
    "6x8-k2x3-s1-p2": (1, 3, 6, 8, 2, 3, 1, 2),
    "8x7-k2-s3-p0": (3, 2, 8, 7, 2, 2, 3, 0),
}

SIZE_HINT = "out_h = (H + 2*pad - filter_h)//stride + 1 and likewise out_w (pad on both sides)."
LAYOUT_HINT = (
    "Rows are ordered (n, oy, ox) and columns (c, ky, kx): fill col[:, :, y, x, :, :] of shape "
    "(N, C, filter_h, filter_w, out_h, out_w), then col.transpose(0, 4, 5, 1, 2, 3)."
)
COL2IM_HINT = (
    "col2im must undo im2col's layout exactly, rows (n, oy, ox) and columns (c, ky, kx), "
    "accumulate (+=) overlapping windows and drop the padding."
)


def _shape(N, C, H, W, fh, fw, stride, pad, reference):
    out_h = reference.output_size(H, fh, stride, pad)
    out_w = reference.output_size(W, fw, stride, pad)
    return (N * out_h * out_w, C * fh * fw)


def _im2col_checked(student, reference, x, fh, fw, stride, pad, name):
    """The student's im2col(x), failing on a wrong shape before any value is compared."""
    col = as_array(student.im2col(x, fh, fw, stride=stride, pad=pad), name=name)
    want = _shape(*x.shape, fh, fw, stride, pad, reference)
    expect(
        col.shape == want,
        f"{name} for x of shape {x.shape} has shape {col.shape}, expected {want}.",
        hint=SIZE_HINT,
    )
    return col


@pytest.mark.hint(LAYOUT_HINT)
@pytest.mark.points(3)
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_im2col_matches_unfold(student, reference, rng, geometry):
    N, C, H, W, fh, fw, stride, pad = geometry
    x = rng.standard_normal((N, C, H, W))
    kept = x.copy()
    name = f"im2col(x, {fh}, {fw}, stride={stride}, pad={pad})"
    with student.inplace(x):
        col = _im2col_checked(student, reference, x, fh, fw, stride, pad, name)
    want = reference.im2col(kept, fh, fw, stride=stride, pad=pad)
    assert_close(col, want, rtol=0, atol=0, name=name, hint=LAYOUT_HINT)
    assert_close(x, kept, rtol=0, atol=0, name="x after im2col", hint="Do not modify the input.")


# The col2im checks feed it the reference's im2col, so that col2im earns its points whatever
# state the student's im2col is in (im2col has checks of its own).


@pytest.mark.points(5)
@pytest.mark.hint(
    "Where windows overlap, col2im must add (+=) their values, not overwrite them (=): "
    "col2im(im2col(ones)) counts how many windows cover each pixel."
)
def test_col2im_counts_overlaps(student, reference):
    for N, C, H, W, fh, fw, stride in [(1, 2, 5, 6, 3, 3, 1), (2, 1, 7, 5, 3, 2, 2)]:
        col = reference.im2col(np.ones((N, C, H, W)), fh, fw, stride)
        counts = student.col2im(col, (N, C, H, W), fh, fw, stride=stride, pad=0)
        want = reference.col2im(col, (N, C, H, W), fh, fw, stride)
        assert_close(
            counts,
            want,
            rtol=0,
            atol=1e-12,
            name=f"col2im(im2col(ones, {fh}, {fw}, stride={stride}), {(N, C, H, W)}, {fh}, "
            f"{fw}, stride={stride})",
        )


@pytest.mark.points(6)
@pytest.mark.hint(COL2IM_HINT)
def test_col2im_is_adjoint_of_im2col(student, reference, rng):
    for geometry in [GEOMETRIES["5x5-k3-s1-p0"], GEOMETRIES["7x5-k3-s2-p1"]]:
        N, C, H, W, fh, fw, stride, pad = geometry
        x = rng.standard_normal((N, C, H, W))
        args = f"{fh}, {fw}, stride={stride}, pad={pad}"
        col = reference.im2col(x, fh, fw, stride=stride, pad=pad)
        y = rng.standard_normal(col.shape)
        back = as_array(
            student.col2im(y, (N, C, H, W), fh, fw, stride=stride, pad=pad),
            name=f"col2im(y, {(N, C, H, W)}, {args})",
        )
        expect(
            back.shape == x.shape,
            f"col2im(y, {(N, C, H, W)}, {args}) has shape {back.shape}, expected {x.shape}.",
        )
        assert_close(
            np.sum(x * back),
            np.sum(col * y),
            rtol=1e-10,
            atol=1e-10,
            name=f"<x, col2im(y)> against <im2col(x), y> ({args})",
        )
