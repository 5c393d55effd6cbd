import torch
from op_names import OpNames  # tests/engine is on the path (rootdir-less import mode)

from napari_selfsup_denoise.engine.masking import grid_spacing, masked_mse, n2v_manipulate


def _unique_batch(b=4, c=2, h=48, w=40):
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)


def test_replacement_is_a_neighbour_never_the_masked_pixel_itself():
    x = _unique_batch()
    for seed in range(5):
        xm, mask = n2v_manipulate(x, 0.05, radius=2, gen=torch.Generator().manual_seed(seed))
        b, _, ys, xs = torch.nonzero(mask, as_tuple=True)
        assert len(b) > 0
        for i in range(len(b)):
            bi, yi, xi = int(b[i]), int(ys[i]), int(xs[i])
            new = xm[bi, :, yi, xi]
            assert not torch.equal(new, x[bi, :, yi, xi])
            win = x[bi, 0, max(0, yi - 2) : yi + 3, max(0, xi - 2) : xi + 3]
            assert bool((win == new[0]).any()), "replacement must come from the 5x5 neighbourhood"
            # all channels are replaced by the same neighbour position
            assert int(new[1] - new[0]) == x.shape[2] * x.shape[3]


def test_unmasked_pixels_are_untouched():
    x = _unique_batch()
    xm, mask = n2v_manipulate(x, 0.02, gen=torch.Generator().manual_seed(1))
    assert torch.equal(xm * (1 - mask), x * (1 - mask))


def test_masked_fraction_is_within_tolerance():
    x = torch.zeros(8, 1, 128, 128)
    for frac in (0.002, 0.015, 0.05):
        _, mask = n2v_manipulate(x, frac, gen=torch.Generator().manual_seed(0))
        got = float(mask.mean())
        g = grid_spacing(frac, 2)
        assert abs(got - 1 / g**2) < 1e-3
        assert 0.5 * frac < got < 1.6 * frac


def test_3d_masking_and_median_mode():
    x = torch.arange(2 * 1 * 16 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16, 16)
    xm, mask = n2v_manipulate(x, 0.02, radius=1, mode="median", gen=torch.Generator().manual_seed(3))
    idx = torch.nonzero(mask[:, 0])
    interior = [r for r in idx.tolist() if all(1 <= v <= 14 for v in r[1:])]
    assert len(interior) > 10
    for b, z, y, xx in interior:
        nb = x[b, 0, max(0, z - 1) : z + 2, max(0, y - 1) : y + 2, max(0, xx - 1) : xx + 2].flatten()
        nb = nb[nb != x[b, 0, z, y, xx]]
        assert xm[b, 0, z, y, xx] == nb.median()


def test_struct_mask_replaces_pixels_along_the_axis():
    x = torch.arange(1 * 1 * 32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    xm, mask = n2v_manipulate(x, 0.01, struct=[(1, 5)], gen=torch.Generator().manual_seed(0))
    _, _, ys, xs = torch.nonzero(mask, as_tuple=True)
    changed = xm != x
    for y, xx in zip(ys.tolist(), xs.tolist()):
        for j in (-2, -1, 1, 2):
            if 0 <= xx + j < 32:
                assert changed[0, 0, y, xx + j], "pixels along X next to a masked pixel must be replaced"


def test_struct_mask_with_two_axes_replaces_a_cross():
    """structN2V along Y and X (noise correlated along both): the pixels along both lines are replaced."""
    x = torch.arange(1 * 1 * 32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32)
    xm, mask = n2v_manipulate(x, 0.01, struct=[(0, 5), (1, 5)], gen=torch.Generator().manual_seed(0))
    _, _, ys, xs = torch.nonzero(mask, as_tuple=True)
    changed = xm != x
    for y, xx in zip(ys.tolist(), xs.tolist()):
        for j in (-2, -1, 1, 2):
            assert not 0 <= y + j < 32 or changed[0, 0, y + j, xx], "pixels along Y must be replaced"
            assert not 0 <= xx + j < 32 or changed[0, 0, y, xx + j], "pixels along X must be replaced"
    assert int(changed.sum()) <= len(ys) * 9  # a cross, not a square


def test_struct_axis_letters_become_mask_lines():
    from napari_selfsup_denoise.engine.methods.n2v import struct_lines

    assert struct_lines("Y", 5, 2) == [(0, 5)]
    assert struct_lines("yx", 3, 2) == [(0, 3), (1, 3)]
    assert struct_lines("XY", 5, 3) == [(1, 5), (2, 5)]
    assert struct_lines("Z", 5, 2) == [(1, 5)]  # no Z in 2D: along X, as one axis always did


def test_loss_only_sees_masked_pixels():
    target = torch.randn(2, 1, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[0, 0, 3, 4] = mask[1, 0, 8, 9] = 1
    pred = (target + 5.0 * (1 - mask)).requires_grad_(True)
    loss = masked_mse(pred, target, mask)
    assert float(loss.detach()) == 0.0
    pred2 = target.clone().requires_grad_(True)
    masked_mse(pred2 + 1.0, target, mask).backward()
    assert torch.count_nonzero(pred2.grad) == 2


def test_draws_outside_the_patch_are_dropped_as_a_selection_would_drop_them():
    """Masks are cut without a boolean selection (a GPU would wait for its size): the same pixels are masked."""
    from napari_selfsup_denoise.engine import masking

    x = _unique_batch(h=45, w=38)  # not multiples of the grid: boxes cut by the patch edge
    for mode, struct in (("uniform", []), ("median", []), ("uniform", [(0, 3)])):
        xm, mask = n2v_manipulate(x, 0.05, mode=mode, struct=struct, gen=torch.Generator().manual_seed(2))
        coords, inside = masking._box_draws(4, (45, 38), 0.05, torch.Generator().manual_seed(2))
        assert not bool(inside.all())  # some draws did fall outside
        kept = coords[inside]
        want = torch.zeros_like(mask)
        want[kept[:, 0], 0, kept[:, 1], kept[:, 2]] = 1.0
        assert torch.equal(mask, want)
        if struct is None:
            assert torch.equal(xm[mask.expand_as(x) == 0], x[mask.expand_as(x) == 0])


# Operators that make the host wait for the device on CUDA (a read of a value, or of a data-dependent size).
HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal", "unique2", "_unique2"}


def test_n2v_masks_and_loss_read_nothing_back_and_copy_no_python_number(monkeypatch):
    """On CUDA either would wait for the device inside a training step (a Python number assigned through
    tensor indices is first made on the host and copied over, blocking): shown on the CPU by tracing."""
    real = torch.Tensor.__setitem__
    numbers = []

    def setitem(self, idx, value):
        if isinstance(value, (int, float, bool)) and any(isinstance(i, torch.Tensor) for i in (idx if
                                                        isinstance(idx, tuple) else (idx,))):  # fmt: skip
            numbers.append(idx)
        return real(self, idx, value)

    monkeypatch.setattr(torch.Tensor, "__setitem__", setitem)
    x = torch.randn(3, 2, 30, 26, requires_grad=False)
    pred = torch.randn(3, 2, 30, 26, requires_grad=True)
    for mode, struct in (("uniform", []), ("median", []), ("uniform", [(1, 5)]), ("uniform", [(0, 3), (1, 5)])):
        with OpNames() as reads:
            xm, mask = n2v_manipulate(x, 0.05, mode=mode, struct=struct, gen=torch.Generator().manual_seed(0))
            masked_mse(pred * xm, x, mask).backward()
        assert not HOST_READS & set(reads.names), (mode, struct, sorted(HOST_READS & set(reads.names)))
        assert not numbers, (mode, struct)


def test_the_masks_constants_are_made_once_per_batch_shape_and_give_the_same_masks():
    """Box corners, offsets and bounds do not change between steps: made (and copied to a GPU) once, not per step."""
    from napari_selfsup_denoise.engine import masking

    x = _unique_batch()
    masking._grid.cache_clear()
    with torch.inference_mode():  # a first call in inference mode (a check) leaves ordinary tensors for training
        n2v_manipulate(x, 0.05, gen=torch.Generator().manual_seed(3))
    made = OpNames()
    with made:
        again = n2v_manipulate(x, 0.05, gen=torch.Generator().manual_seed(3))
    assert "arange" not in made.names and "meshgrid" not in made.names
    masking._grid.cache_clear()
    fresh = n2v_manipulate(x, 0.05, gen=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))
