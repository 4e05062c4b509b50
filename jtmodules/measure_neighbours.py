"""Measure how many neighbours objects have and how much of their outline touches them.

Features of each extract object (group ``Neighbours``):

``Neighbours_Count``
    Number of other objects that come within ``neighbour_distance`` pixels
    (Euclidean distance between pixel centres; 1 for objects that touch),
    i.e. that overlap the object dilated by a disc of that radius.
``Neighbours_Fraction_Touching``
    Fraction of the object's outline pixels (pixels with a 4-neighbour
    outside the object) within ``touching_distance`` pixels of another object.

Both are computed for all objects at once: for every outline pixel the labels
at all offsets within the larger distance are looked up (an object's closest
pixel to any other object is always one of its outline pixels). The
reference's ``Neighbours_List`` (the neighbours' labels as text) is not
measured: measurements are numbers. The values are given to the assign
objects as described in :mod:`jtmodules._measure`.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules import _measure

VERSION = "0.0.1"

Output = collections.namedtuple("Output", ["measurements", "figure"])


def outline(label_image: np.ndarray) -> np.ndarray:
    """Bool image of the object pixels with a 4-neighbour (or the image edge) of another label."""
    padded = np.pad(label_image, 1)
    centre = padded[1:-1, 1:-1]
    edge = padded[:-2, 1:-1] != centre
    edge |= padded[2:, 1:-1] != centre
    edge |= padded[1:-1, :-2] != centre
    edge |= padded[1:-1, 2:] != centre
    return edge & (centre != 0)


def features(
    objects: _measure.Objects,
    label_image: np.ndarray,
    neighbour_distance: float,
    touching_distance: float,
) -> dict[str, np.ndarray]:
    """Neighbour count and touching fraction of each object."""
    n = objects.n
    rows, columns = np.nonzero(outline(label_image))
    own = label_image[rows, columns]
    own_position = objects.positions(own)
    reach = int(np.floor(max(neighbour_distance, touching_distance)))
    padded = np.pad(label_image, reach)
    rows, columns = rows + reach, columns + reach
    touching = np.zeros(rows.size, dtype=bool)
    pairs = []
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            squared = dy * dy + dx * dx
            near = squared <= neighbour_distance**2
            touch = squared <= touching_distance**2
            if squared == 0 or not (near or touch):
                continue
            other = padded[rows + dy, columns + dx]
            foreign = (other != 0) & (other != own)
            if near:
                pairs.append(own_position[foreign] * n + objects.positions(other[foreign]))
            if touch:
                touching |= foreign
    codes = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, dtype=np.intp)
    count = np.bincount(codes // max(n, 1), minlength=n).astype(np.float64)
    outline_pixels = np.bincount(own_position, minlength=n)
    touched = np.bincount(own_position[touching], minlength=n)
    return {
        "Neighbours_Count": count,
        "Neighbours_Fraction_Touching": touched / np.maximum(outline_pixels, 1),
    }


def main(
    extract_objects,
    assign_objects,
    aggregate=False,
    neighbour_distance=3,
    touching_distance=3,
    plot=False,
):
    """Measure neighbour features of `extract_objects` and assign them to `assign_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the objects measured
        (their neighbours are the other objects of this image).
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    aggregate : bool, optional
        Summarise several extract objects per assign object (``Mean_``,
        ``Std_``, ``Sum_`` columns and ``Count``) instead of taking the one
        extract object inside.
    neighbour_distance : float, optional
        Largest distance in pixels at which another object counts as a neighbour.
    touching_distance : float, optional
        Largest distance in pixels from another object at which an outline
        pixel counts as touching.
    plot : bool, optional
        Whether to create a figure (the assign objects and their neighbour count).

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
    aggregate = _measure.check_flag(aggregate, "aggregate")
    near = _measure.check_number(neighbour_distance, "neighbour_distance")
    touch = _measure.check_number(touching_distance, "touching_distance")
    if max(near, touch) > max(extract.shape):
        raise ValueError("neighbour_distance and touching_distance must be below the image size")
    objects = _measure.Objects.of(extract)
    values = features(objects, extract, near, touch)
    measurements = _measure.assign(
        _measure.frame(values, objects), objects, extract, target, aggregate
    )
    figure = _measure.figure(measurements, target) if plot else ""
    return Output(measurements, figure)
