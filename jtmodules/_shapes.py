"""Helpers of the segmentation modules: input checks and object shape features.

The checks turn the arrays a pipeline passes into the dtypes the modules
compute with and raise :class:`ValueError` naming the argument when an array
cannot be what the handle says. :func:`object_features` measures the shape
features that ``filter`` and ``separate_clumps`` select objects by, all
objects at once.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import regionprops_table

#: shape features :func:`object_features` knows
FEATURES = ("area", "eccentricity", "circularity", "convexity")


def _check_2d(array, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2D array, got shape {array.shape}")
    return array


def intensity_image(image, name: str = "image") -> np.ndarray:
    """`image` as an array after checking it is a 2D grey-value image.

    Unsigned integer (uint8, uint16, ...) and float images are accepted;
    bool and signed integer images are not (they are masks or labels).
    """
    image = _check_2d(image, name)
    if not (
        np.issubdtype(image.dtype, np.unsignedinteger) or np.issubdtype(image.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be an intensity image (uint8 or uint16), got {image.dtype}")
    return image


def binary_image(mask, name: str = "mask") -> np.ndarray:
    """`mask` as a bool array: non-zero pixels of a bool or label image are True."""
    mask = _check_2d(mask, name)
    if mask.dtype == np.bool_:
        return mask
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(
            f"{name} must be a binary (bool) or label (integer) image, got {mask.dtype}"
        )
    return mask != 0


def label_image(image, name: str = "label_image") -> np.ndarray:
    """`image` as an int32 label image (a bool image counts as one object, label 1)."""
    image = _check_2d(image, name)
    if image.dtype == np.bool_:
        return image.astype(np.int32)
    if not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"{name} must be a label (integer) image, got {image.dtype}")
    if image.size and image.min() < 0:
        raise ValueError(f"{name} must not have negative labels")
    if image.size and image.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{name} has labels larger than int32 can hold")
    return image.astype(np.int32, copy=False)


def same_shape(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    """Raise ValueError unless the two images have equal shapes."""
    if first.shape != second.shape:
        raise ValueError(
            f"{names[1]} has shape {second.shape} but {names[0]} has shape {first.shape}"
        )


def object_features(labels: np.ndarray, names=FEATURES) -> dict[str, np.ndarray]:
    """Shape features of every object of a label image.

    Parameters
    ----------
    labels : numpy.ndarray[numpy.int32]
        Label image of shape (M, N), 0 is background.
    names : sequence of str
        Features to compute, any of :data:`FEATURES`: ``area`` (pixels),
        ``eccentricity`` (of the ellipse with the same second moments, 0 for a
        circle), ``circularity`` (form factor 4π·area/perimeter², at most 1)
        and ``convexity`` (solidity: area / area of the convex hull).

    Returns
    -------
    dict
        ``label``: the labels present (sorted), and one float array per
        requested feature, aligned with ``label``.
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r}; features: {', '.join(FEATURES)}")
    properties = ["label", "area"]
    if "eccentricity" in names:
        properties.append("eccentricity")
    if "circularity" in names:
        properties.append("perimeter")
    if "convexity" in names:
        properties.append("solidity")
    table = regionprops_table(labels, properties=properties)
    result = {"label": table["label"].astype(np.int32), "area": table["area"].astype(float)}
    if "eccentricity" in names:
        result["eccentricity"] = table["eccentricity"].astype(float)
    if "circularity" in names:
        perimeter = table["perimeter"].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            circ = 4.0 * np.pi * result["area"] / perimeter**2
        # one-pixel objects have perimeter 0: count them as circles
        result["circularity"] = np.minimum(np.nan_to_num(circ, nan=1.0, posinf=1.0), 1.0)
    if "convexity" in names:
        result["convexity"] = table["solidity"].astype(float)
    return {k: v for k, v in result.items() if k == "label" or k in names}
