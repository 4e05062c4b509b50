"""Tests of the image-arithmetic jtmodules: apply_mask, clip, combine_masks,
combine_channels, invert, rescale, project, generate_volume_image,
register_objects, register_objects_channel and use_label_image."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import simulated_site

from jtmodules import (
    apply_mask,
    clip,
    combine_channels,
    combine_masks,
    generate_volume_image,
    invert,
    project,
    register_objects,
    register_objects_channel,
    rescale,
    use_label_image,
)


@pytest.fixture(scope="module")
def site():
    return simulated_site((128, 128), seed=3)


def is_figure(text):
    figure = json.loads(text)
    return isinstance(figure, dict) and figure["data"] and "layout" in figure


# --------------------------------------------------------------------------------------- apply_mask


def test_apply_mask_zeroes_outside_keeps_inside(site):
    inside = site["nuclei"] > 0
    out = apply_mask.main(site["dapi"], inside)
    assert out.masked_image.dtype == np.uint16
    assert np.array_equal(out.masked_image[inside], site["dapi"][inside])
    assert not out.masked_image[~inside].any()
    assert out.figure == ""
    # the nuclei are brighter than the rest: masking drops background, not signal
    assert out.masked_image[inside].mean() > 2 * site["dapi"][~inside].mean()


def test_apply_mask_label_mask_and_label_image(site):
    by_bool = apply_mask.main(site["stain"], site["cells"] > 0).masked_image
    by_labels = apply_mask.main(site["stain"], site["cells"]).masked_image
    assert np.array_equal(by_bool, by_labels)
    # a label image keeps its labels: nuclei masked by the cells are unchanged
    masked = apply_mask.main(site["nuclei"], site["cells"]).masked_image
    assert masked.dtype == np.int32
    assert np.array_equal(masked, site["nuclei"])
    # ... and masked by the nuclei of even labels keeps exactly those
    even = np.where(site["nuclei"] % 2 == 0, site["nuclei"], 0)
    masked = apply_mask.main(site["cells"], even > 0).masked_image
    assert set(np.unique(masked)) == set(np.unique(even))


def test_apply_mask_plot(site):
    for plot_type in ("objects", "intensity"):
        out = apply_mask.main(site["dapi"], site["nuclei"], plot_type=plot_type, plot=True)
        assert is_figure(out.figure)


def test_apply_mask_bad_input(site):
    with pytest.raises(ValueError, match="plot_type"):
        apply_mask.main(site["dapi"], site["nuclei"], plot_type="labels")
    with pytest.raises(ValueError, match="mask"):
        apply_mask.main(site["dapi"], site["nuclei"][:64])
    with pytest.raises(ValueError, match="mask"):
        apply_mask.main(site["dapi"], site["nuclei"].astype(float))
    with pytest.raises(ValueError, match="image"):
        apply_mask.main(site["dapi"][:, :, None], site["nuclei"])


# --------------------------------------------------------------------------------------------- clip


def test_clip_cytoplasm_keeps_labels(site):
    cells, nuclei = site["cells"], site["nuclei"]
    out = clip.main(cells, nuclei)
    cytoplasm = out.clipped_image
    assert cytoplasm.dtype == np.int32
    assert not cytoplasm[nuclei > 0].any()
    assert np.array_equal(cytoplasm[nuclei == 0], cells[nuclei == 0])
    # each cell loses exactly the area of its nucleus (cells contain their nucleus)
    n = int(cells.max()) + 1
    cell_area = np.bincount(cells.ravel(), minlength=n)
    nucleus_area = np.bincount(cells[nuclei > 0], minlength=n)
    assert np.array_equal(
        np.bincount(cytoplasm.ravel(), minlength=n)[1:], (cell_area - nucleus_area)[1:]
    )
    assert out.figure == ""


def test_clip_binary(site):
    out = clip.main(site["cells"] > 0, site["nuclei"] > 0).clipped_image
    assert out.dtype == np.bool_
    assert np.array_equal(out, (site["cells"] > 0) & (site["nuclei"] == 0))


def test_clip_plot_and_bad_input(site):
    assert is_figure(clip.main(site["cells"], site["nuclei"] > 0, plot=True).figure)
    with pytest.raises(ValueError, match="clipping_mask"):
        clip.main(site["cells"], site["nuclei"][1:])
    with pytest.raises(ValueError, match="clipping_mask"):
        clip.main(site["cells"], site["dapi"].astype(np.float32))
    with pytest.raises(ValueError, match="image"):
        clip.main(site["cells"].astype(float), site["nuclei"])


# ------------------------------------------------------------------------------------ combine_masks


def test_combine_masks_truth_table():
    a = np.array([[False, False], [True, True]])
    b = np.array([[False, True], [False, True]])
    expected = {
        "AND": [[False, False], [False, True]],
        "OR": [[False, True], [True, True]],
        "EXCLUSIVE_OR": [[False, True], [True, False]],
    }
    for operation, result in expected.items():
        out = combine_masks.main(a, b, logical_operation=operation).combined_mask
        assert out.dtype == np.bool_
        assert np.array_equal(out, result), operation


def test_combine_masks_site(site):
    cells, nuclei = site["cells"] > 0, site["nuclei"] > 0
    assert np.array_equal(combine_masks.main(cells, nuclei).combined_mask, nuclei)  # default AND
    assert np.array_equal(combine_masks.main(cells, nuclei, "OR").combined_mask, cells)
    xor = combine_masks.main(cells, nuclei, "EXCLUSIVE_OR").combined_mask
    assert np.array_equal(xor, cells & ~nuclei)
    out = combine_masks.main(cells, nuclei, "OR", plot=True)
    assert is_figure(out.figure)
    assert combine_masks.main(cells, nuclei).figure == ""


def test_combine_masks_bad_input(site):
    cells, nuclei = site["cells"] > 0, site["nuclei"] > 0
    with pytest.raises(ValueError, match="logical_operation"):
        combine_masks.main(cells, nuclei, "XOR")
    with pytest.raises(ValueError, match="mask_2"):
        combine_masks.main(cells, site["nuclei"])
    with pytest.raises(ValueError, match="mask_2"):
        combine_masks.main(cells, nuclei[:10])


# --------------------------------------------------------------------------------- combine_channels


def test_combine_channels_weighted_sum(site):
    dapi, stain = site["dapi"], site["stain"]
    out = combine_channels.main(dapi, stain)
    assert out.combined_image.dtype == np.uint16
    assert np.array_equal(out.combined_image, dapi.astype(np.int64) + stain)  # no saturation here
    out = combine_channels.main(dapi, stain, weight_1=0.5, weight_2=2)
    expected = np.clip(np.rint(0.5 * dapi.astype(float) + 2.0 * stain), 0, 65535)
    assert np.array_equal(out.combined_image, expected)
    assert out.figure == ""
    assert is_figure(combine_channels.main(dapi, stain, plot=True).figure)


def test_combine_channels_saturates():
    a = np.array([[200, 10, 3]], dtype=np.uint8)
    b = np.array([[100, 20, 1]], dtype=np.uint8)
    assert combine_channels.main(a, b).combined_image.tolist() == [[255, 30, 4]]
    assert combine_channels.main(a, b, 1, -1).combined_image.tolist() == [[100, 0, 2]]
    assert combine_channels.main(a, b, 0.5, 0.5).combined_image.tolist() == [[150, 15, 2]]
    assert combine_channels.main(a, b).combined_image.dtype == np.uint8


def test_combine_channels_bad_input(site):
    with pytest.raises(ValueError, match="image_2"):
        combine_channels.main(site["dapi"], site["stain"].astype(np.uint8))
    with pytest.raises(ValueError, match="image_2"):
        combine_channels.main(site["dapi"], site["stain"][:5])
    with pytest.raises(ValueError, match="image_1"):
        combine_channels.main(site["nuclei"], site["stain"])
    with pytest.raises(ValueError, match="weight_2"):
        combine_channels.main(site["dapi"], site["stain"], weight_2="2")


# ------------------------------------------------------------------------------------------- invert


def test_invert(site):
    out = invert.main(site["dapi"])
    assert out.inverted_image.dtype == np.uint16
    assert np.array_equal(
        out.inverted_image.astype(np.int64), 65535 - site["dapi"].astype(np.int64)
    )
    assert np.array_equal(invert.main(out.inverted_image).inverted_image, site["dapi"])
    # bright nuclei become the darkest pixels
    assert (
        out.inverted_image[site["nuclei"] > 0].mean()
        < out.inverted_image[site["nuclei"] == 0].mean()
    )
    assert invert.main(np.array([[0, 1, 255]], np.uint8)).inverted_image.tolist() == [[255, 254, 0]]
    mask = site["nuclei"] > 0
    assert np.array_equal(invert.main(mask).inverted_image, ~mask)
    assert out.figure == ""
    assert is_figure(invert.main(site["dapi"], plot=True).figure)


def test_invert_bad_input(site):
    with pytest.raises(ValueError, match="image"):
        invert.main(site["nuclei"])
    with pytest.raises(ValueError, match="image"):
        invert.main(site["dapi"][None])


# ------------------------------------------------------------------------------------------ rescale


def test_rescale_exact():
    image = np.array([[0, 50, 100, 150, 200]], dtype=np.uint8)
    out = rescale.main(image, min_value=50, max_value=150).rescaled_image
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 128, 255, 255]]  # 127.5 rounds to even
    assert rescale.main(image).rescaled_image.tolist() == [[0, 64, 128, 191, 255]]
    # a constant image without bounds has no contrast; bounds from one side only
    flat = np.full((3, 3), 7, np.uint16)
    assert not rescale.main(flat).rescaled_image.any()
    assert (rescale.main(flat, max_value=5).rescaled_image == 65535).all()
    assert not rescale.main(flat, min_value=9).rescaled_image.any()


def test_rescale_site(site):
    dapi = site["dapi"]
    low, high = np.percentile(dapi, [1, 99])
    out = rescale.main(dapi, min_value=float(low), max_value=float(high))
    rescaled = out.rescaled_image
    assert rescaled.dtype == np.uint16
    assert (rescaled[dapi <= low] == 0).all()
    assert (rescaled[dapi >= high] == 65535).all()
    expected = np.rint(np.clip((dapi - low) / (high - low), 0, 1) * 65535)
    assert np.array_equal(rescaled, expected)
    # monotone: the order of the intensities is kept
    order = np.argsort(dapi, axis=None, kind="stable")
    assert (np.diff(rescaled.ravel()[order].astype(np.int64)) >= 0).all()
    full = rescale.main(dapi).rescaled_image
    assert full.min() == 0 and full.max() == 65535
    assert out.figure == ""
    assert is_figure(rescale.main(dapi, plot=True).figure)


def test_rescale_bad_input(site):
    with pytest.raises(ValueError, match="min_value"):
        rescale.main(site["dapi"], min_value=500, max_value=100)
    with pytest.raises(ValueError, match="max_value"):
        rescale.main(site["dapi"], max_value="high")
    with pytest.raises(ValueError, match="intensity_image"):
        rescale.main(site["nuclei"])


# ------------------------------------------------------------------------------------------ project


def test_project_max_and_sum(site):
    dapi = site["dapi"]
    planes = [dapi // 4, dapi, dapi // 2]  # a nucleus in focus in the middle plane
    stack = np.stack(planes, axis=2)
    out = project.main(stack)
    assert out.projected_image.dtype == np.uint16
    assert np.array_equal(out.projected_image, dapi)
    summed = project.main(stack, method="sum").projected_image
    assert summed.dtype == np.uint32
    assert np.array_equal(summed, sum(p.astype(np.int64) for p in planes))
    assert out.figure == ""
    assert is_figure(project.main(stack, plot=True).figure)


def test_project_sum_does_not_overflow():
    full16 = np.full((4, 5, 3), 65535, np.uint16)
    summed = project.main(full16, "sum").projected_image
    assert summed.dtype == np.uint32 and (summed == 3 * 65535).all()
    full8 = np.full((4, 5, 257), 255, np.uint8)
    summed = project.main(full8, "sum").projected_image
    assert summed.dtype == np.uint16 and (summed == 65535).all()
    summed = project.main(np.full((2, 2, 258), 255, np.uint8), "sum").projected_image
    assert summed.dtype == np.uint32 and (summed == 258 * 255).all()
    # a single plane (jterator squeezes Z = 1) stays as it is
    plane = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for method in ("max", "sum"):
        out = project.main(plane, method).projected_image
        assert out.dtype == np.uint8 and np.array_equal(out, plane)


def test_project_bad_input():
    stack = np.zeros((4, 4, 3), np.uint16)
    with pytest.raises(ValueError, match="method"):
        project.main(stack, method="mean")
    with pytest.raises(ValueError, match="image"):
        project.main(stack[..., None])
    with pytest.raises(ValueError, match="image"):
        project.main(stack.astype(np.float32))


# ---------------------------------------------------------------------------- generate_volume_image


def bead_stack(shape=(96, 96), n_planes=16, seed=0):
    """Beads on a tilted plane: a z-stack and the height (in planes) of the plane."""
    rng = np.random.default_rng(seed)
    rows, columns = np.indices(shape)
    surface = 2 + 0.08 * columns + 0.04 * rows
    stack = rng.normal(100, 10, (*shape, n_planes))
    ys, xs = np.meshgrid(np.arange(2, shape[0], 5), np.arange(2, shape[1], 5), indexing="ij")
    ys = np.clip(ys + rng.integers(-1, 2, ys.shape), 0, shape[0] - 1).ravel()
    xs = np.clip(xs + rng.integers(-1, 2, xs.shape), 0, shape[1] - 1).ravel()
    z = np.arange(n_planes)
    for y, x in zip(ys, xs, strict=True):
        spot = np.exp(-((rows - y) ** 2 + (columns - x) ** 2) / 2.0)
        profile = np.exp(-((z - surface[y, x]) ** 2) / 2.0)
        stack += 1000 * spot[:, :, None] * profile
    return np.clip(np.rint(stack), 0, 65535).astype(np.uint16), surface


def test_generate_volume_image_tilted_plane():
    stack, surface = bead_stack()
    mask = np.zeros(stack.shape[:2], bool)
    mask[10:-10, 15:-15] = True
    out = generate_volume_image.main(stack, mask)
    volume = out.volume_image
    assert volume.dtype == np.uint16
    assert not volume[~mask].any()
    error = volume[mask] - surface[mask]
    assert np.abs(error).mean() < 0.4
    assert np.abs(error).max() <= 1
    assert abs(error.mean()) < 0.1
    assert out.figure == ""
    # a label mask gives the same heights
    labels = np.zeros(mask.shape, np.int32)
    labels[mask] = 1
    labels[mask & (np.indices(mask.shape)[1] > 48)] = 2
    assert np.array_equal(generate_volume_image.main(stack, labels).volume_image, volume)
    # a closing only fills dips: never lower, and still close to the plane
    closed = generate_volume_image.main(stack, mask, close_surface=True, close_disc_size=4)
    assert (closed.volume_image >= volume).all()
    assert np.abs(closed.volume_image[mask] - surface[mask]).mean() < 0.5
    assert is_figure(generate_volume_image.main(stack, mask, plot=True).figure)


def test_generate_volume_image_without_beads():
    stack, _ = bead_stack(shape=(32, 32), n_planes=6)
    mask = np.ones((32, 32), bool)
    assert not generate_volume_image.main(stack, mask, threshold=60000).volume_image.any()
    assert not generate_volume_image.main(stack, np.zeros((32, 32), bool)).volume_image.any()


def test_generate_volume_image_bad_input():
    stack = np.zeros((8, 8, 3), np.uint16)
    mask = np.ones((8, 8), bool)
    with pytest.raises(ValueError, match="image"):
        generate_volume_image.main(stack[:, :, 0], mask)
    with pytest.raises(ValueError, match="mask"):
        generate_volume_image.main(stack, mask[:4])
    with pytest.raises(ValueError, match="superpixel_size"):
        generate_volume_image.main(stack, mask, superpixel_size=0)
    with pytest.raises(ValueError, match="bead_size"):
        generate_volume_image.main(stack, mask, bead_size=-1)
    with pytest.raises(ValueError, match="close_disc_size"):
        generate_volume_image.main(stack, mask, close_surface=True, close_disc_size=2.5)


# --------------------------------------------------------------------------------- register_objects


def test_register_objects_binary_gets_labelled(site):
    truth = site["nuclei"]
    out = register_objects.main(truth > 0)
    assert out._fields == ("objects",)
    objects = out.objects
    assert objects.dtype == np.int32
    assert np.array_equal(objects > 0, truth > 0)
    n_true = int(truth.max())
    # touching nuclei may merge into one component, nothing gets split
    assert 0.8 * n_true <= objects.max() <= n_true
    for label in np.unique(truth[truth > 0]):
        assert len(np.unique(objects[truth == label])) == 1
    # 8-connectivity: diagonal neighbours are one object
    diagonal = np.eye(4, dtype=bool)
    assert register_objects.main(diagonal).objects.max() == 1


def test_register_objects_keeps_labels(site):
    objects = register_objects.main(site["cells"], plot=True).objects
    assert objects.dtype == np.int32
    assert np.array_equal(objects, site["cells"])
    assert objects is not site["cells"]


def test_register_objects_bad_input(site):
    with pytest.raises(ValueError, match="mask"):
        register_objects.main(site["nuclei"].astype(np.float64))
    with pytest.raises(ValueError, match="mask"):
        register_objects.main(-site["nuclei"])
    with pytest.raises(ValueError, match="mask"):
        register_objects.main(site["nuclei"][None])


# ----------------------------------------------------------------------------- channel labels


@pytest.mark.parametrize("module", [register_objects_channel, use_label_image])
def test_channel_label_images(site, module):
    for dtype in (np.uint16, np.uint8):
        channel = site["nuclei"].astype(dtype)
        out = module.main(channel)
        (labels,) = out
        assert len(out._fields) == 1 and "figure" not in out._fields
        assert labels.dtype == np.int32
        assert np.array_equal(labels, site["nuclei"])
    big = np.array([[0, 65535]], np.uint16)
    assert module.main(big)[0].tolist() == [[0, 65535]]


@pytest.mark.parametrize("module", [register_objects_channel, use_label_image])
def test_channel_label_images_bad_input(site, module):
    argument = "mask" if module is register_objects_channel else "input_image"
    with pytest.raises(ValueError, match=argument):
        module.main(site["dapi"].astype(np.float32))
    with pytest.raises(ValueError, match=argument):
        module.main(site["nuclei"] > 0)
    with pytest.raises(ValueError, match=argument):
        module.main(np.array([[0, 2**32]], np.uint64))
    with pytest.raises(ValueError, match=argument):
        module.main(site["nuclei"][None].astype(np.uint16))
