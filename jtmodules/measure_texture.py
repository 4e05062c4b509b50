"""Measure the texture of objects in a grey-value image.

Features of each extract object (group ``Texture``):

``Texture_Gabor-frequency-<f>`` (always)
    Gabor response as in CellProfiler's texture measurement: the object's
    mean-centred intensities are weighted by a Gaussian centred on the
    object's centroid (standard deviation: a third of the object's
    equivalent radius) and by a complex sinusoid of wavelength ``f`` pixels;
    the feature is the largest magnitude of the sum over the object among the
    orientations 0°, 45°, 90° and 135°. All objects are computed at once: the
    sinusoid is constant across each row, column or diagonal of an object, so
    the weighted pixels are first summed per object line (:func:`numpy.bincount`).
``Texture_Hu-<0..6>`` (always)
    Hu's moment invariants of the intensity-weighted object (as
    ``moments_weighted_hu`` of :func:`skimage.measure.regionprops`; the
    moments are summed for all objects at once, the invariants come from
    :func:`skimage.measure.moments_hu`).
``Texture_TAS-<set>-<0..8>`` (``measure_TAS``, 54 values)
    Parameter-free threshold adjacency statistics
    (:func:`mahotas.features.pftas`) of the object's bounding box with the
    background set to 0, with the Otsu threshold of the whole image. Sets in
    the order mahotas returns them: ``center`` (pixels within one standard
    deviation of the mean above-threshold intensity), ``mu-margin`` (above
    the mean minus that margin), ``mu`` (above the mean), then the same for the
    complement (``n-center``, ``n-mu-margin``, ``n-mu``).
``Texture_LBP-radius-<r>-<0..35>`` (``measure_LBP``)
    Histogram of the rotation-invariant local binary patterns of 8 points at
    radius ``r`` (:func:`mahotas.features.lbp`) of the object's pixels, as
    fractions of the object's pixels.
``Texture_Haralick-<name>-<scale>`` (``measure_haralick``, 13 per scale)
    Haralick features (:func:`mahotas.features.haralick`, mean over the 4
    directions, pixel distance ``scale``) of the object's pixels: intensities
    are clipped at the image's 99.999th percentile and scaled to 1..255, the
    background is 0 and ignored. NaN for objects too small for a direction.

TAS, LBP and Haralick features are computed per object on its bounding box.
The values are given to the assign objects as described in
:mod:`jtmodules._measure`; jterator adds the channel name as a suffix.
"""

from __future__ import annotations

import collections
import warnings

import mahotas as mh
import numpy as np
from skimage.measure import moments_hu

from jtmodules import _measure

VERSION = "0.3.1"

Output = collections.namedtuple("Output", ["measurements", "figure"])

#: directions (row, column) of the Gabor sinusoid: 0°, 45°, 90°, 135°
GABOR_DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 1))

#: the sets of threshold adjacency statistics, in the order of mahotas
TAS_SETS = ("center", "mu-margin", "mu", "n-center", "n-mu-margin", "n-mu")

#: the 13 Haralick features, in the order of mahotas
HARALICK_NAMES = (
    "angular-second-moment",
    "contrast",
    "correlation",
    "sum-of-squares",
    "inverse-diff-moment",
    "sum-avg",
    "sum-var",
    "sum-entropy",
    "entropy",
    "diff-var",
    "diff-entropy",
    "info-measure-corr-1",
    "info-measure-corr-2",
)

#: number of rotation-invariant local binary patterns of 8 points
LBP_PATTERNS = 36

#: percentile at which intensities are clipped for Haralick features
HARALICK_CLIP_PERCENTILE = 99.999


def _pixels(objects: _measure.Objects, image: np.ndarray):
    values = image.ravel()[objects.flat].astype(np.float64)
    rows, columns = objects.coordinates()
    return values, rows, columns


def gabor(
    objects: _measure.Objects, image: np.ndarray, boxes: np.ndarray, frequencies, pixels=None
) -> dict[str, np.ndarray]:
    """Gabor features ``Gabor-frequency-<f>`` of each object (see the module doc)."""
    n = objects.n
    index = objects.index
    values, rows, columns = _pixels(objects, image) if pixels is None else pixels
    cy, cx = objects.mean(rows), objects.mean(columns)
    dy, dx = rows - cy[index], columns - cx[index]
    two_variance = (2 * (np.sqrt(objects.counts / np.pi) / 3) ** 2)[index]
    squared = dy * dy
    squared += dx * dx
    squared /= -two_variance
    weights = np.exp(squared, out=squared)
    weights *= values - objects.mean(values)[index]
    weights /= np.pi * two_variance
    local_rows = rows.astype(np.intp) - boxes[index, 0]
    local_columns = columns.astype(np.intp) - boxes[index, 1]
    heights = boxes[:, 2] - boxes[:, 0]
    widths = boxes[:, 3] - boxes[:, 1]
    best = np.zeros((len(frequencies), n))
    for a, b in GABOR_DIRECTIONS:
        # position of each pixel along the direction, from 0 within its object's box
        lowest = min(a, 0) * (heights - 1) + min(b, 0) * (widths - 1)
        lengths = abs(a) * (heights - 1) + abs(b) * (widths - 1) + 1
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        line = (starts - lowest)[index]
        if a:
            line += a * local_rows
        if b:
            line += b * local_columns
        sums = np.bincount(line, weights=weights, minlength=int(lengths.sum()))
        owner = np.repeat(np.arange(n), lengths)
        position = np.arange(sums.size) - starts[owner] + lowest[owner]
        position = position + a * boxes[owner, 0] + b * boxes[owner, 1]
        offset = (position - a * cy[owner] - b * cx[owner]) / np.hypot(a, b)
        for j, frequency in enumerate(frequencies):
            phase = 2 * np.pi * offset / frequency
            real = np.bincount(owner, weights=sums * np.cos(phase), minlength=n)
            imaginary = np.bincount(owner, weights=sums * np.sin(phase), minlength=n)
            best[j] = np.maximum(best[j], np.hypot(real, imaginary))
    return {f"Gabor-frequency-{f}": best[j] for j, f in enumerate(frequencies)}


def hu(objects: _measure.Objects, image: np.ndarray, pixels=None) -> dict[str, np.ndarray]:
    """Hu moments ``Hu-<0..6>`` of the intensity-weighted objects."""
    index = objects.index
    values, rows, columns = _pixels(objects, image) if pixels is None else pixels
    mass = objects.total(values)
    moments = np.full((objects.n, 7), np.nan)
    weighed = mass > 0
    if not weighed.any():
        return {f"Hu-{k}": moments[:, k] for k in range(7)}
    with np.errstate(invalid="ignore", divide="ignore"):
        dy = rows - (objects.total(values * rows) / mass)[index]
        dx = columns - (objects.total(values * columns) / mass)[index]
    dy[~np.isfinite(dy)] = 0
    dx[~np.isfinite(dx)] = 0
    vy, vx = values * dy, values * dx
    vyy, vxx = vy * dy, vx * dx
    central = {
        (2, 0): vyy,
        (1, 1): vy * dx,
        (0, 2): vxx,
        (3, 0): vyy * dy,
        (2, 1): vyy * dx,
        (1, 2): vxx * dy,
        (0, 3): vxx * dx,
    }
    normalized = np.zeros((objects.n, 4, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        for (p, q), products in central.items():
            normalized[:, p, q] = objects.total(products) / mass ** ((p + q) / 2 + 1)
    for i in np.flatnonzero(weighed):
        moments[i] = moments_hu(normalized[i])
    return {f"Hu-{k}": moments[:, k] for k in range(7)}


def _lbp(patch: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    shifted = np.where(mask, patch.astype(np.float64) + 1, 0.0)
    histogram = mh.features.lbp(shifted, radius, 8, ignore_zeros=True).astype(np.float64)
    histogram = np.pad(histogram, (0, LBP_PATTERNS - histogram.size))
    return histogram / max(histogram.sum(), 1.0)


def _haralick(patch8: np.ndarray, scale: int) -> np.ndarray:
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            values = mh.features.haralick(
                patch8, ignore_zeros=True, return_mean=True, distance=scale
            )
    except ValueError:  # too few pixel pairs in some direction
        return np.full(len(HARALICK_NAMES), np.nan)
    return np.asarray(values, dtype=np.float64)


def per_object(
    objects: _measure.Objects,
    label_image: np.ndarray,
    image: np.ndarray,
    boxes: np.ndarray,
    tas: bool,
    radii: tuple[int, ...],
    scales: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """TAS (if `tas`), LBP (for `radii`) and Haralick (for `scales`) features per object."""
    names = []
    if tas:
        names += [f"TAS-{s}-{i}" for s in TAS_SETS for i in range(9)]
    names += [f"LBP-radius-{r}-{i}" for r in radii for i in range(LBP_PATTERNS)]
    haralick_names = [f"Haralick-{name}-{s}" for name in HARALICK_NAMES for s in scales]
    names += haralick_names
    out = np.full((objects.n, len(names)), np.nan)
    if not names:
        return {}
    if tas:  # mahotas thresholds images of up to 16 bits
        threshold = mh.otsu(np.minimum(image, 2**16 - 1).astype(np.uint16, copy=False))
    if scales:
        top = max(float(np.percentile(image, HARALICK_CLIP_PERCENTILE)), 1.0)
    padded = np.pad(image, 1)
    for i, (top_row, left), mask in objects.crops(label_image, 1, boxes):
        rows = slice(top_row + 1, top_row + 1 + mask.shape[0])  # + 1: padded by 1
        patch = padded[rows, left + 1 : left + 1 + mask.shape[1]]
        patch = np.where(mask, patch, 0).astype(image.dtype)
        row = []
        if tas:
            row.append(mh.features.pftas(patch, T=threshold))
        for radius in radii:
            row.append(_lbp(patch, mask, radius))
        if scales:
            scaled = 1 + np.floor(254 * np.minimum(patch, top) / top)
            patch8 = np.where(mask, scaled, 0).astype(np.uint8)
            haralick = np.stack([_haralick(patch8, s) for s in scales], axis=1)
            row.append(haralick.ravel())  # name-major, scale-minor
        out[i] = np.concatenate(row)
    return {name: out[:, j] for j, name in enumerate(names)}


def main(
    extract_objects,
    assign_objects,
    intensity_image,
    aggregate=False,
    frequencies=[1, 5, 10],  # noqa: B006 (equal to the handles value; never changed)
    measure_TAS=False,  # noqa: N803 (handle name of the reference)
    measure_LBP=False,  # noqa: N803
    radii=[1, 5, 10],  # noqa: B006
    measure_haralick=False,
    scales=[1, 2],  # noqa: B006
    plot=False,
):
    """Measure texture features of `extract_objects` and assign them to `assign_objects`.

    Parameters
    ----------
    extract_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) (0 is background) of the objects measured.
    assign_objects : numpy.ndarray[numpy.int32]
        Label image of shape (M, N) of the objects that get the values.
    intensity_image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-value image of shape (M, N) whose texture is measured.
    aggregate : bool, optional
        Summarise several extract objects per assign object (``Mean_``,
        ``Std_``, ``Sum_`` columns and ``Count``) instead of taking the one
        extract object inside.
    frequencies : list of int, optional
        Wavelengths in pixels of the Gabor filters (integers >= 1).
    measure_TAS : bool, optional
        Also measure threshold adjacency statistics (54 features).
    measure_LBP : bool, optional
        Also measure local binary patterns (36 features per radius).
    radii : list of int, optional
        Radii of the local binary patterns (integers >= 1).
    measure_haralick : bool, optional
        Also measure Haralick features (13 per scale; slowest).
    scales : list of int, optional
        Pixel distances of the Haralick co-occurrences (integers >= 1).
    plot : bool, optional
        Whether to create a figure (the image, the assign objects and their
        first Gabor feature).

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
    frequencies = _measure.check_integers(frequencies, "frequencies")
    tas = _measure.check_flag(measure_TAS, "measure_TAS")
    lbp = _measure.check_flag(measure_LBP, "measure_LBP")
    haralick = _measure.check_flag(measure_haralick, "measure_haralick")
    radii = _measure.check_integers(radii, "radii") if lbp else ()
    scales = _measure.check_integers(scales, "scales") if haralick else ()

    objects = _measure.Objects.of(extract)
    boxes = objects.boxes(extract)
    pixels = _pixels(objects, image)
    values = gabor(objects, image, boxes, frequencies, pixels)
    others = per_object(objects, extract, image, boxes, tas, radii, scales)
    values.update({k: v for k, v in others.items() if k.startswith("TAS")})
    values.update(hu(objects, image, pixels))
    values.update({k: v for k, v in others.items() if not k.startswith("TAS")})
    values = {f"Texture_{name}": v for name, v in values.items()}
    measurements = _measure.assign(
        _measure.frame(values, objects), objects, extract, target, aggregate
    )
    figure = _measure.figure(measurements, target, image=image) if plot else ""
    return Output(measurements, figure)
