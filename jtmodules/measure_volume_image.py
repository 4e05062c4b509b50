"""Measure the 3D shape of objects from a height map (volume image).

The intensity image is a height map as ``generate_volume_image`` makes it:
each pixel's value is the height of the cell surface above the substrate in
z-planes. With the pixel size ``pixel_size`` (µm) and the distance between
z-planes ``z_step`` (µm) the features of each extract object are (group
``Morphology3D``):

``max_height``, ``mean_height``
    Largest and mean height over the object's pixels, in µm.
``volume_pL``
    Sum of the heights times the pixel area, in picolitres (1 pL = 1000 µm³).
``lower_surface_area``
    Footprint: number of pixels times the pixel area, in µm².
``upper_surface_area``
    Area of the surface through the pixels' heights, in µm²: every 2x2 block
    of pixels of the same object is split into two triangles between their
    3D points (x, y, height) and the triangle areas are summed.
``total_surface_area``
    Lower plus upper surface area.

All objects are computed at once (:func:`numpy.bincount`). The values are
given to the assign objects as described in :mod:`jtmodules._measure`.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules import _measure

VERSION = "0.0.4"

Output = collections.namedtuple("Output", ["measurements", "figure"])


def upper_surface(
    objects: _measure.Objects, label_image: np.ndarray, heights: np.ndarray, pixel_size: float
) -> np.ndarray:
    """Triangulated area (µm²) of the height surface (`heights` in µm) over each object."""
    corner = label_image[:-1, :-1]
    whole = (corner != 0) & (corner == label_image[1:, :-1])
    whole &= corner == label_image[:-1, 1:]
    whole &= corner == label_image[1:, 1:]
    rows, columns = np.nonzero(whole)
    z00 = heights[rows, columns]
    down = heights[rows + 1, columns] - z00
    right = heights[rows, columns + 1] - z00
    diagonal = heights[rows + 1, columns + 1] - z00
    p = pixel_size
    # |(p, 0, down) x (p, p, diagonal)| and |(0, p, right) x (p, p, diagonal)|
    first = np.sqrt((p * down) ** 2 + (p * (down - diagonal)) ** 2 + p**4)
    second = np.sqrt((p * (diagonal - right)) ** 2 + (p * right) ** 2 + p**4)
    where = objects.positions(corner[rows, columns])
    return np.bincount(where, weights=(first + second) / 2, minlength=objects.n)


def features(
    objects: _measure.Objects,
    label_image: np.ndarray,
    image: np.ndarray,
    pixel_size: float,
    z_step: float,
) -> dict[str, np.ndarray]:
    """3D morphology features of each object (see the module doc)."""
    heights = image.astype(np.float64) * z_step
    values = heights.ravel()[objects.flat]
    highest = np.zeros(objects.n)
    np.maximum.at(highest, objects.index, values)
    lower = objects.counts * pixel_size**2
    upper = upper_surface(objects, label_image, heights, pixel_size)
    return {
        "Morphology3D_max_height": highest,
        "Morphology3D_mean_height": objects.mean(values),
        "Morphology3D_volume_pL": objects.total(values) * pixel_size**2 / 1000.0,
        "Morphology3D_lower_surface_area": lower,
        "Morphology3D_upper_surface_area": upper,
        "Morphology3D_total_surface_area": lower + upper,
    }


def main(
    extract_objects,
    assign_objects,
    intensity_image,
    aggregate=False,
    pixel_size=0.1625,
    z_step=0.25,
    plot=False,
):
    """Measure 3D morphology of `extract_objects` on a height map and assign it to `assign_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the objects measured.
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Height map of shape (M, N): height of each pixel in z-planes.
    aggregate : bool, optional
        Summarise several extract objects per assign object (``Mean_``,
        ``Std_``, ``Sum_`` columns and ``Count``) instead of taking the one
        extract object inside.
    pixel_size : float, optional
        Side of a pixel in µm (0.1625 for a 40x objective on a CellVoyager).
    z_step : float, optional
        Distance between z-planes in µm.
    plot : bool, optional
        Whether to create a figure (the height map, the assign objects and
        their largest height).

    Returns
    -------
    Output
        ``measurements``: pandas.DataFrame indexed by the labels of
        `assign_objects` (``label``), one float64 column per feature;
        ``figure``: Plotly JSON, or ``""`` without `plot`.

    Raises
    ------
    ValueError
        For bad inputs, or without `aggregate` when an assign object holds more
        than one extract object.
    """
    extract, target = _measure.check_objects(extract_objects, assign_objects)
    image = _measure.check_intensity(intensity_image, "intensity_image", extract.shape)
    aggregate = _measure.check_flag(aggregate, "aggregate")
    pixel_size = _measure.check_number(pixel_size, "pixel_size", strict=True)
    z_step = _measure.check_number(z_step, "z_step", strict=True)
    objects = _measure.Objects.of(extract)
    values = features(objects, extract, image, pixel_size, z_step)
    measurements = _measure.assign(
        _measure.frame(values, objects), objects, extract, target, aggregate
    )
    figure = _measure.figure(measurements, target, image=image) if plot else ""
    return Output(measurements, figure)
