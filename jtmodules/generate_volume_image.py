"""Height map of the cell surface from a z-stack of surface-bound beads.

Fluorescent beads that stick to the cells' upper surface (and to the
coverslip around them) mark the surface in a z-stack: at each position the
beads are brightest in the plane where the surface is. The module turns the
stack into a 2D "volume image" whose pixel values are the height of the
surface, in z-planes, above the bottom plane of the stack:

1. Each plane is smoothed with a Gaussian of standard deviation `bead_size`
   pixels (scipy.ndimage), which suppresses noise and joins the pixels of a
   bead.
2. The image is divided into square superpixels of `superpixel_size` pixels.
   In each superpixel the brightest voxel of the smoothed stack gives a sample
   of the surface: its (y, x) position and its z-plane. Superpixels whose
   brightest smoothed value is below `threshold` (no bead) give no sample.
3. The samples are interpolated linearly over the image (Delaunay
   triangulation, scipy.interpolate.griddata); outside the samples' convex
   hull the nearest sample is used.
4. With `close_surface`, narrow dips of the height map (e.g. between sparse
   beads) are filled by a grey-level morphological closing with a disc of
   radius `close_disc_size` pixels (scikit-image).
5. The heights are rounded to whole planes and kept inside `mask` only; all
   pixels outside the mask are 0. Without samples the height map is all 0.

The volume of an object is then ``sum of its heights * z_step * pixel_area``
(what ``measure_volume_image`` computes from this image).
"""

from __future__ import annotations

import collections
import numbers

import numpy as np
from scipy import interpolate, ndimage
from scipy.spatial import QhullError
from skimage import morphology

from jtmodules._plots import image_figure

VERSION = "0.1.0"

Output = collections.namedtuple("Output", ["volume_image", "figure"])


def _positive(value, argument, integer=False):
    valid = not isinstance(value, bool) and isinstance(value, numbers.Real) and value > 0
    if valid and integer:
        valid = float(value).is_integer()  # also 4.0 from a settings file
    if not valid:
        what = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{argument} must be {what}, got {value!r}")
    return int(value) if integer else float(value)


def surface_samples(stack, threshold, bead_size, superpixel_size):
    """Surface samples of a bead stack, one per superpixel that holds a bead.

    Parameters
    ----------
    stack : numpy.ndarray
        Bead image of shape (M, N, Z).
    threshold : float
        Smallest smoothed intensity of a bead.
    bead_size : float
        Standard deviation, in pixels, of the Gaussian that smooths each plane.
    superpixel_size : int
        Side, in pixels, of the square superpixels.

    Returns
    -------
    points : numpy.ndarray[numpy.intp]
        Shape (K, 2): (row, column) of the samples.
    heights : numpy.ndarray[numpy.intp]
        Shape (K,): z-plane of each sample.
    """
    smoothed = ndimage.gaussian_filter(
        stack.astype(np.float32), sigma=(bead_size, bead_size, 0), mode="nearest"
    )
    brightest = smoothed.max(axis=2)
    plane = smoothed.argmax(axis=2)
    rows, columns = brightest.shape
    block_rows = np.arange(rows) // superpixel_size
    block_columns = np.arange(columns) // superpixel_size
    n_block_columns = int(block_columns[-1]) + 1
    blocks = block_rows[:, np.newaxis] * n_block_columns + block_columns[np.newaxis, :]
    index = np.arange(int(blocks.max()) + 1)
    peaks = np.asarray(ndimage.maximum(brightest, blocks, index))
    positions = np.asarray(ndimage.maximum_position(brightest, blocks, index), dtype=np.intp)
    points = positions[peaks >= threshold].reshape(-1, 2)
    return points, plane[points[:, 0], points[:, 1]]


def _interpolate(points, heights, rows, columns):
    """Heights at the pixels (rows, columns): linear, nearest outside the hull."""
    values = heights.astype(np.float64)
    nearest = interpolate.griddata(points, values, (rows, columns), method="nearest")
    if len(points) < 3:
        return nearest
    try:
        linear = interpolate.griddata(points, values, (rows, columns), method="linear")
    except QhullError:  # all samples on one line: no triangulation
        return nearest
    return np.where(np.isnan(linear), nearest, linear)


def main(
    image,
    mask,
    threshold=150,
    bead_size=2,
    superpixel_size=4,
    close_surface=False,
    close_disc_size=8,
    plot=False,
):
    """Height map of the surface marked by the beads in `image`, inside `mask`.

    Parameters
    ----------
    image : numpy.ndarray[numpy.uint8 | numpy.uint16]
        Bead z-stack of shape (M, N, Z), planes ordered from the bottom
        (coverslip) up.
    mask : numpy.ndarray[numpy.bool_ | numpy.int32]
        Binary or label image of shape (M, N); heights are reported where it
        is non-zero.
    threshold : float, optional
        Smallest intensity, after smoothing, of a bead; superpixels darker than
        this give no surface sample.
    bead_size : float, optional
        Approximate bead radius in pixels: the standard deviation of the
        Gaussian that smooths each plane.
    superpixel_size : int, optional
        Side, in pixels, of the square superpixels that each give at most one
        surface sample.
    close_surface : bool, optional
        Whether to fill narrow dips of the height map by a morphological
        closing.
    close_disc_size : int, optional
        Radius, in pixels, of the disc of the closing.
    plot : bool, optional
        Whether to create a figure.

    Returns
    -------
    Output
        ``volume_image``: numpy.ndarray[numpy.uint16] of shape (M, N), the
        surface height in z-planes above the bottom plane (0 outside `mask`);
        ``figure``: Plotly JSON string, or ``""`` when `plot` is false.

    Raises
    ------
    ValueError
        If `image` is not a 3D unsigned integer array, `mask` is not a 2D bool
        or integer array of shape (M, N), or a parameter is out of range.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3:
        raise ValueError(f"image must be a 3D (M, N, Z) array, got {image.ndim} dimensions")
    if not np.issubdtype(image.dtype, np.unsignedinteger):
        raise ValueError(f"image must be an intensity image (uint8 or uint16), got {image.dtype}")
    if min(image.shape) == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    if mask.ndim != 2 or not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer)):
        raise ValueError(
            f"mask must be a 2D bool or label image, got {mask.ndim} dimensions of {mask.dtype}"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask has shape {mask.shape} but image has planes of {image.shape[:2]}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    bead_size = _positive(bead_size, "bead_size")
    superpixel_size = _positive(superpixel_size, "superpixel_size", integer=True)
    close_disc_size = _positive(close_disc_size, "close_disc_size", integer=True)

    inside = mask != 0
    volume_image = np.zeros(mask.shape, dtype=np.uint16)
    points, heights = surface_samples(image, threshold, bead_size, superpixel_size)
    if len(points) and inside.any():
        if close_surface:
            # the closing needs the surface around the mask too
            rows, columns = np.indices(mask.shape)
            surface = _interpolate(points, heights, rows, columns)
            surface = morphology.closing(surface, morphology.disk(close_disc_size))
            surface = surface[inside]
        else:
            rows, columns = np.nonzero(inside)
            surface = _interpolate(points, heights, rows, columns)
        volume_image[inside] = np.clip(np.rint(surface), 0, np.iinfo(np.uint16).max)

    figure = ""
    if plot:
        figure = image_figure(
            [
                ("maximum projection", image.max(axis=2), "intensity"),
                ("volume image", volume_image, "intensity"),
            ]
        )
    return Output(volume_image, figure)
