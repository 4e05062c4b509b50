"""Alignment of the images of one site between multiplexing cycles (the numbers behind ``align``).

Convention
----------
The shift ``(y, x)`` of a site in a cycle (stored as :class:`tmlib.models.SiteShift`)
says by how many pixels the content of that cycle's image (the *target*) is
displaced relative to the same site in the reference cycle::

    target[r + y, c + x] ≈ reference[r, c]

Positive ``y`` means the content moved down (to larger row indices), positive
``x`` that it moved right.  The reference cycle itself has shift ``(0, 0)``.

From the shifts of all cycles of a site, :func:`residues` gives how many rows
and columns lie outside the region every cycle imaged, and
:func:`shift_and_crop` cuts each cycle's image down to exactly that common
region, so that the aligned images of all cycles match pixel for pixel: with
``top, bottom, left, right = residues(shifts)``, ``shift_and_crop(reference, 0,
0, top, bottom, left, right)`` equals ``shift_and_crop(target, y, x, top,
bottom, left, right)`` wherever both show the same content.

Every function here is pure: numpy arrays in, numpy arrays or ints out.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["clip_percentile", "register", "residues", "shift_and_crop"]

# Hanning windows by image shape: building one costs about as much as a
# registration of a small image, and all images of an experiment share a shape.
_WINDOWS: dict[tuple[int, int], np.ndarray] = {}


def _window(shape: tuple[int, int]) -> np.ndarray:
    window = _WINDOWS.get(shape)
    if window is None:
        if len(_WINDOWS) > 8:  # images of a few shapes at most; never grow without bound
            _WINDOWS.clear()
        window = _WINDOWS[shape] = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    return window


def _as_float32(image: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy (or view) of a 2D image, mean subtracted."""
    data = np.asarray(image, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {data.shape}")
    # Subtracting the mean keeps the window's edge from dominating the spectrum
    # (a bright background times the window is itself a strong, unshifted pattern).
    return np.ascontiguousarray(data - np.float32(data.mean()))


def register(reference: np.ndarray, target: np.ndarray, *, window: bool = True) -> tuple[int, int]:
    """Integer shift of `target` relative to `reference` by FFT phase correlation.

    Parameters
    ----------
    reference : ndarray, shape (H, W), any real dtype (typically uint8 or uint16)
        Image of the site in the reference cycle.
    target : ndarray, shape (H, W), any real dtype
        Image of the same site (same stain) in another cycle.
    window : bool
        Multiply both images by a Hanning window first, which suppresses the
        spurious zero-shift peak that the image borders cause.

    Returns
    -------
    tuple of int
        ``(y, x)`` such that ``target[r + y, c + x] ≈ reference[r, c]`` (positive:
        content moved down/right); the sub-pixel estimate rounded to integers.
        Shifts are found up to half the image size in each direction.

    Raises
    ------
    ValueError
        When the images are not 2D or differ in shape.
    """
    if reference.shape != target.shape:
        raise ValueError(
            f"reference and target differ in shape: {reference.shape} vs {target.shape}"
        )
    ref = _as_float32(reference)
    tgt = _as_float32(target)
    win = _window(ref.shape) if window else None
    (dx, dy), _response = cv2.phaseCorrelate(ref, tgt, win)
    return int(round(dy)), int(round(dx))


def clip_percentile(image: np.ndarray, percentile: float) -> np.ndarray:
    """Clip an image at one of its own intensity percentiles.

    Used before registration (``align --robust-align``) so that a few very
    bright objects (debris, dead cells) cannot dominate the correlation.

    Parameters
    ----------
    image : ndarray, shape (H, W), dtype uint8, uint16 or float
    percentile : float
        In ``(0, 100]``; pixels above this percentile are set to it.

    Returns
    -------
    ndarray, shape (H, W), same dtype as `image`
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be within (0, 100], got {percentile}")
    upper = np.percentile(image, percentile)
    return np.minimum(image, np.asarray(upper).astype(image.dtype))


def residues(shifts: Iterable[tuple[int, int]]) -> tuple[int, int, int, int]:
    """Rows and columns of a site that not every cycle imaged.

    Parameters
    ----------
    shifts : iterable of (int, int)
        The ``(y, x)`` shift of every cycle of the site (see the module
        docstring), the reference cycle's ``(0, 0)`` included; it is implied
        when missing.

    Returns
    -------
    tuple of int
        ``(top, bottom, left, right)``, each >= 0: ``bottom`` is the largest
        positive ``y``, ``top`` the magnitude of the most negative ``y``,
        ``right`` and ``left`` likewise for ``x``.
    """
    ys = [0]
    xs = [0]
    for y, x in shifts:
        ys.append(int(y))
        xs.append(int(x))
    return -min(ys), max(ys), -min(xs), max(xs)


def shift_and_crop(
    image: np.ndarray, y: int, x: int, top: int, bottom: int, left: int, right: int
) -> np.ndarray:
    """Cut a cycle's image of a site down to the region that every cycle imaged.

    Parameters
    ----------
    image : ndarray, shape (H, W), any dtype
        The site's image in one cycle.
    y, x : int
        The shift of that cycle (``(0, 0)`` for the reference cycle).
    top, bottom, left, right : int
        The site's residues (:func:`residues` of the shifts of all cycles), so
        ``-top <= y <= bottom`` and ``-left <= x <= right``.

    Returns
    -------
    ndarray, shape (H - top - bottom, W - left - right), dtype of `image`
        A view of `image`: pixel ``[i, j]`` is the content at reference
        position ``(top + i, left + j)``, i.e. ``image[top + y + i, left + x + j]``.
        The aligned images of all cycles of a site are thus registered pixel
        to pixel.

    Raises
    ------
    ValueError
        When the shift lies outside the residues or nothing would be left.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    y, x, top, bottom, left, right = (int(v) for v in (y, x, top, bottom, left, right))
    if min(top, bottom, left, right) < 0:
        raise ValueError("residues must not be negative")
    if not (-top <= y <= bottom and -left <= x <= right):
        raise ValueError(
            f"shift ({y}, {x}) lies outside the residues (top {top}, bottom {bottom}, "
            f"left {left}, right {right})"
        )
    height, width = image.shape
    out_h = height - top - bottom
    out_w = width - left - right
    if out_h <= 0 or out_w <= 0:
        raise ValueError(
            f"residues (top {top}, bottom {bottom}, left {left}, right {right}) leave nothing "
            f"of a {height}x{width} image"
        )
    row = top + y
    col = left + x
    return image[row : row + out_h, col : col + out_w]
