"""Measure the intensity of objects in a grey-value image.

Features (one value per extract object, over the object's pixels):
``Intensity_max``, ``Intensity_mean``, ``Intensity_min``, ``Intensity_sum`` and
``Intensity_std`` (population standard deviation). They are computed for all
objects at once from the object pixels (:func:`numpy.bincount` and
``numpy.maximum.at``) and given to the assign objects as described in
:mod:`jtmodules._measure` (with ``aggregate``: ``Mean_``/``Std_``/``Sum_``
columns and ``Count``). jterator adds the channel name as a suffix, e.g.
``Intensity_mean_DAPI``.
"""

from __future__ import annotations

import collections

import numpy as np

from jtmodules import _measure

VERSION = "0.1.1"

Output = collections.namedtuple("Output", ["measurements", "figure"])


def features(objects: _measure.Objects, image: np.ndarray) -> dict[str, np.ndarray]:
    """Intensity features of each object (name to values of shape (n,))."""
    values = image.ravel()[objects.flat].astype(np.float64)
    mean = objects.mean(values)
    deviation = values - mean[objects.index]
    std = np.sqrt(objects.mean(deviation * deviation))
    largest = np.full(objects.n, -np.inf)
    smallest = np.full(objects.n, np.inf)
    np.maximum.at(largest, objects.index, values)
    np.minimum.at(smallest, objects.index, values)
    return {
        "Intensity_max": largest,
        "Intensity_mean": mean,
        "Intensity_min": smallest,
        "Intensity_sum": objects.total(values),
        "Intensity_std": std,
    }


def main(extract_objects, assign_objects, intensity_image, aggregate=False, plot=False):
    """Measure intensity features of `extract_objects` and assign them to `assign_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the objects measured.
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-value image of shape (M, N) whose pixels are measured.
    aggregate : bool, optional
        Summarise several extract objects per assign object (``Mean_``,
        ``Std_``, ``Sum_`` columns and ``Count``) instead of taking the one
        extract object inside.
    plot : bool, optional
        Whether to create a figure (the image, the assign objects and their
        first feature).

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
    objects = _measure.Objects.of(extract)
    values = _measure.frame(features(objects, image), objects)
    measurements = _measure.assign(values, objects, extract, target, aggregate)
    figure = _measure.figure(measurements, target, image=image) if plot else ""
    return Output(measurements, figure)
