"""Detect small bright spots (blobs) inside a mask.

A stand-in for the SExtractor-style detection of the original (library
``sep``): the image is filtered with a scale-normalised Laplacian of Gaussian
matched to blobs of ``mean_area`` pixels (σ = r/√2 for the radius
r = √(mean_area/π)), which removes the smooth background and enhances spots
of that size. A pixel is detected where the filter response exceeds
``threshold`` times the noise of the response (its robust standard deviation,
1.4826 × median absolute deviation, over the mask), i.e. ``threshold`` is a
signal-to-noise ratio. Detected regions are deblended: each local maximum of
the response seeds one blob and a watershed of the response splits regions
holding several maxima. Blobs smaller than ``min_area`` or larger than
``max_area`` pixels are dropped.

``blobs`` labels each blob's pixels, ``centroids`` one pixel of each blob
where the response has its maximum (the blob's centre), with the same label.
"""

from __future__ import annotations

import collections
import math
import numbers

import numpy as np
from scipy import ndimage
from skimage.segmentation import relabel_sequential, watershed

from jtmodules import _shapes
from jtmodules._plots import image_figure

VERSION = "0.6.0"

Output = collections.namedtuple("Output", ["centroids", "blobs", "figure"])


def _number(value, name, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return float(value)


def log_response(image: np.ndarray, mean_area: float) -> np.ndarray:
    """Negative scale-normalised LoG of `image` for blobs of `mean_area` pixels.

    Scaled so that a Gaussian spot of the matched size gives its amplitude.
    """
    sigma = max(math.sqrt(mean_area / math.pi) / math.sqrt(2.0), 0.5)
    response = ndimage.gaussian_laplace(image.astype(np.float32), sigma, mode="reflect")
    response *= np.float32(-2.0 * sigma * sigma)
    return response


def main(image, mask, threshold=1, min_area=5, mean_area=5, max_area=100, plot=False):
    """Detect blobs in `image` within `mask`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Grey-scale image of shape (M, N) with bright spots.
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N); blobs are only detected where it
        is non-zero.
    threshold : float, optional
        Detection threshold as a multiple of the noise of the filtered image.
    min_area : int, optional
        Smallest area of a blob in pixels.
    mean_area : float, optional
        Typical area of a blob in pixels (sets the filter's scale).
    max_area : int, optional
        Largest area of a blob in pixels.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``centroids``: numpy.ndarray[numpy.int32] of shape (M, N), one pixel per
        blob labelled 1..n; ``blobs``: numpy.ndarray[numpy.int32] of shape
        (M, N), the blobs' pixels with the same labels; ``figure``: Plotly
        JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If the images are not 2D intensity/mask images of the same shape, or a
        parameter is not a positive number or `min_area` exceeds `max_area`.
    """
    image = _shapes.intensity_image(image, "image")
    inside = _shapes.binary_image(mask, "mask")
    _shapes.same_shape(image, inside, ("image", "mask"))
    threshold = _number(threshold, "threshold", 0)
    min_area = _number(min_area, "min_area", 1)
    mean_area = _number(mean_area, "mean_area", 1)
    max_area = _number(max_area, "max_area", 1)
    if min_area > max_area:
        raise ValueError(f"min_area {min_area} is larger than max_area {max_area}")

    response = log_response(image, mean_area)
    blobs = np.zeros(image.shape, np.int32)
    centroids = np.zeros(image.shape, np.int32)
    if inside.any():
        values = response[inside]
        centre = float(np.median(values))
        noise = 1.4826 * float(np.median(np.abs(values - centre)))
        detected = inside & (response > centre + threshold * max(noise, 1e-12))
        # deblending: one blob per local maximum of the response
        size = 2 * math.ceil(math.sqrt(mean_area / math.pi)) + 1
        peaks = detected & (response == ndimage.maximum_filter(response, size=size))
        markers, _ = ndimage.label(peaks, structure=np.ones((3, 3), bool))
        if markers.any():
            parts = watershed(-response, markers=markers, mask=detected)
            areas = np.bincount(parts.ravel())
            keep = (areas >= min_area) & (areas <= max_area)
            keep[0] = False
            parts = np.where(keep[parts], parts, 0)
            blobs = relabel_sequential(parts)[0].astype(np.int32, copy=False)
            # each blob holds its seed, a maximum (one pixel, rarely a plateau)
            flat = np.flatnonzero(peaks & (blobs > 0))
            labels, first = np.unique(blobs.ravel()[flat], return_index=True)
            centroids.ravel()[flat[first]] = labels

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("image", image, "intensity"),
                ("filtered", response, "intensity"),
                ("blobs", blobs, "label"),
            ]
        )
    return Output(centroids, blobs, figure)
