"""Synthesise the pixels of one microscope site.

Everything here is pure numpy/scipy: no files, no clocks, no global random
state.  Randomness always comes from a :class:`numpy.random.Generator` passed
in by the caller, so equal generators give equal arrays.

The model of one site is

1. :func:`place_cells` draws a :class:`CellPopulation`: elliptical nuclei that
   never overlap, each inside a larger elliptical cell body.  Part of the
   cells are placed next to an already placed cell so that clusters of
   touching cells form (and some nuclei almost touch), which gives
   segmentation something to separate.
2. :func:`move_cells` advances a population by one time point (small random
   displacements; labels, i.e. cell identities, are kept).
3. :class:`SiteRenderer` (or the one-off :func:`render_site`) turns a
   population into label images and noise-free stain intensities (counts
   above background) for nuclei and cytoplasm.
4. :func:`channel_signal` picks/derives the noise-free signal of a channel:
   channel 0 nuclei, channel 1 cytoplasm, channels >= 2 a spotty stain that
   also follows the cytoplasm (:func:`spot_field`).
5. :func:`expose` applies the illumination field of the channel
   (:func:`vignetting_field`), a background, shot noise and camera read noise
   and converts to ``uint16``.  The standard-normal numbers it needs come from
   a :class:`NoiseBank` (drawing 5 million normals per plane would cost more
   than everything else together).

Object edges fall off over :data:`EDGE_WIDTH` pixels instead of being hard
steps; this is the "slight blur" of the optics.  Out-of-focus planes of a
z-stack are blurred further by :func:`defocus`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tmlib.lazy import lazy_import

if TYPE_CHECKING:
    from numpy.typing import NDArray

# tm_simulate --help imports this module: numpy and scipy come with the first plate
np = lazy_import("numpy")
ndimage = lazy_import("scipy.ndimage")

__all__ = [
    "EDGE_WIDTH",
    "MAX_CELLS",
    "CellPopulation",
    "NoiseBank",
    "SiteRenderer",
    "SiteRendering",
    "channel_signal",
    "default_nucleus_radius",
    "defocus",
    "expose",
    "move_cells",
    "place_cells",
    "render_site",
    "spot_field",
    "texture_tile",
    "vignetting_field",
]

#: Largest number of cells on one site (labels are stored as ``uint16``).
MAX_CELLS = 65535

#: Width in pixels over which the intensity of a nucleus or cell falls from
#: full to zero at its outline (the optical blur of in-focus objects).
EDGE_WIDTH = 1.5

#: Number of pixels processed at once by :func:`expose` (fits in L2 cache).
_CHUNK = 1 << 17


@dataclass(frozen=True)
class CellPopulation:
    """Geometry and brightness of the cells of one site.

    Cell ``i`` has label ``i + 1`` in every label image, at every time point.
    All arrays have ``n`` rows (``n = len(population)``); lengths are in
    pixels, angles in radians (measured from the image x axis towards +y).

    Attributes
    ----------
    centres : numpy.ndarray
        ``(n, 2)`` float64, nucleus centre ``(y, x)``.
    nucleus_axes : numpy.ndarray
        ``(n, 2)`` float64, semi-axes ``(major, minor)`` of the nucleus.
    nucleus_angle : numpy.ndarray
        ``(n,)`` float64, direction of the nucleus' major axis.
    cell_offset : numpy.ndarray
        ``(n, 2)`` float64, ``(dy, dx)`` from nucleus centre to cell centre.
    cell_axes : numpy.ndarray
        ``(n, 2)`` float64, semi-axes ``(major, minor)`` of the cell body; the
        cell ellipse always contains the nucleus ellipse.
    cell_angle : numpy.ndarray
        ``(n,)`` float64, direction of the cell's major axis.
    nucleus_brightness : numpy.ndarray
        ``(n,)`` float64, nuclear stain in counts above background.
    cell_brightness : numpy.ndarray
        ``(n,)`` float64, cytoplasmic stain in counts above background.
    texture_position : numpy.ndarray
        ``(n, 2)`` float64 in ``[0, 1)``, where in the texture tile the cell's
        texture is read from (fixed per cell, so texture is stable in time).
    """

    centres: NDArray[np.float64]
    nucleus_axes: NDArray[np.float64]
    nucleus_angle: NDArray[np.float64]
    cell_offset: NDArray[np.float64]
    cell_axes: NDArray[np.float64]
    cell_angle: NDArray[np.float64]
    nucleus_brightness: NDArray[np.float64]
    cell_brightness: NDArray[np.float64]
    texture_position: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.centres.shape[0])

    @property
    def labels(self) -> NDArray[np.int64]:
        """``(n,)`` int64, label of each cell (``1..n``)."""
        return np.arange(1, len(self) + 1, dtype=np.int64)

    @property
    def cell_centres(self) -> NDArray[np.float64]:
        """``(n, 2)`` float64, centre ``(y, x)`` of each cell body."""
        return self.centres + self.cell_offset


@dataclass(frozen=True)
class SiteRendering:
    """Noise-free rendering of a :class:`CellPopulation`.

    Attributes
    ----------
    nuclei_labels : numpy.ndarray
        ``(H, W)`` uint16, label ``i + 1`` on the pixels of nucleus ``i``,
        0 elsewhere.
    cell_labels : numpy.ndarray
        ``(H, W)`` uint16, label ``i + 1`` on the pixels of cell ``i`` (a
        superset of its nucleus), 0 on background.  Where cell bodies overlap
        the pixel goes to the cell whose outline is relatively farther away.
    nuclei : numpy.ndarray
        ``(H, W)`` float32, nuclear stain in counts above background.
    cytoplasm : numpy.ndarray
        ``(H, W)`` float32, cytoplasmic stain in counts above background.
    """

    nuclei_labels: NDArray[np.uint16]
    cell_labels: NDArray[np.uint16]
    nuclei: NDArray[np.float32]
    cytoplasm: NDArray[np.float32]


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in shape)
    if height < 1 or width < 1:
        raise ValueError(f"image shape must be positive, got {shape}")
    return height, width


def default_nucleus_radius(shape: tuple[int, int]) -> float:
    """Typical nucleus radius in pixels for an image of the given size.

    Grows with the square root of the image side, so that small test images
    hold a few dozen cells and camera-sized images a few hundred: about 7 px
    at 256 x 256 and 21 px at 2160 x 2560 (clipped to 4..30 px).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image.

    Returns
    -------
    float
        Mean nucleus radius in pixels.
    """
    height, width = _check_shape(shape)
    side = math.sqrt(height * width)
    return float(np.clip(7.0 * math.sqrt(side / 256.0), 4.0, 30.0))


class _UniformStream:
    """Uniform [0, 1) numbers drawn from a generator in blocks (fast scalars)."""

    def __init__(self, rng: np.random.Generator, block: int = 4096) -> None:
        self._rng = rng
        self._block = block
        self._values: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._values):
            self._values = self._rng.random(self._block).tolist()
            self._next = 0
        value = self._values[self._next]
        self._next += 1
        return value


def place_cells(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    nucleus_radius: float | None = None,
    coverage: float = 0.45,
    cluster_probability: float = 0.6,
    touching_probability: float = 0.25,
    max_attempts: int = 40,
) -> CellPopulation:
    """Draw the cells of one site.

    Cells are placed one by one.  With probability `cluster_probability` a
    new cell is put next to a random existing cell, close enough that the cell
    bodies overlap (they touch in the cell label image); a fraction
    `touching_probability` of those is put so close that the two nuclei are
    within a few pixels of each other.  Otherwise the position is uniform.
    Nuclei never overlap (their bounding circles keep >= 1 px apart) and every
    nucleus centre lies inside the image.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        ``(H, W)`` of the image.
    nucleus_radius : float, optional
        Mean nucleus radius in pixels; default :func:`default_nucleus_radius`.
    coverage : float
        Approximate fraction of the image covered by cell bodies.
    cluster_probability : float
        Probability that a cell is placed next to an existing one.
    touching_probability : float
        Probability that a clustered cell's nucleus nearly touches its
        neighbour's nucleus.
    max_attempts : int
        Tries per cell before it is dropped (dense images hold fewer cells).

    Returns
    -------
    CellPopulation
        At least one, at most :data:`MAX_CELLS` cells.
    """
    height, width = _check_shape(shape)
    radius = default_nucleus_radius(shape) if nucleus_radius is None else float(nucleus_radius)
    if radius <= 0:
        raise ValueError(f"nucleus_radius must be positive, got {nucleus_radius}")
    mean_cell_area = math.pi * (2.2 * radius) ** 2 * 0.875
    wanted = coverage * height * width / mean_cell_area * rng.uniform(0.85, 1.15)
    n = int(min(max(round(wanted), 1), MAX_CELLS))

    nuc_major = radius * rng.uniform(0.8, 1.2, n)
    nuc_minor = nuc_major * rng.uniform(0.7, 1.0, n)
    nuc_angle = rng.uniform(0.0, math.pi, n)
    offset_len = radius * rng.uniform(0.0, 0.35, n)
    offset_dir = rng.uniform(0.0, 2.0 * math.pi, n)
    offset = np.stack([offset_len * np.sin(offset_dir), offset_len * np.cos(offset_dir)], axis=1)
    cell_major = radius * rng.uniform(1.9, 2.5, n)
    cell_minor = cell_major * rng.uniform(0.75, 1.0, n)
    # The cell ellipse must contain the (shifted) nucleus ellipse.
    cell_minor = np.maximum(cell_minor, nuc_major + offset_len + 2.0)
    cell_major = np.maximum(cell_major, cell_minor)
    cell_angle = rng.uniform(0.0, math.pi, n)
    nuc_bright = np.clip(rng.lognormal(math.log(2200.0), 0.3, n), 700.0, 6000.0)
    cell_bright = np.clip(rng.lognormal(math.log(650.0), 0.3, n), 200.0, 2000.0)
    texture_position = rng.random((n, 2))
    cell_radius = np.sqrt(cell_major * cell_minor)

    pos = np.empty((n, 2), dtype=np.float64)
    kept_nuc = np.empty(n, dtype=np.float64)
    kept_cell = np.empty(n, dtype=np.float64)
    keep: list[int] = []
    draw = _UniformStream(rng)
    nuc_list, cell_list = nuc_major.tolist(), cell_radius.tolist()
    two_pi = 2.0 * math.pi
    for i in range(n):
        for _ in range(max_attempts):
            count = len(keep)
            if count and draw() < cluster_probability:
                j = min(int(draw() * count), count - 1)
                k = keep[j]
                if draw() < touching_probability:
                    dist = (nuc_list[i] + nuc_list[k] + 1.0) * (1.0 + 0.12 * draw())
                else:
                    dist = (cell_list[i] + cell_list[k]) * (0.75 + 0.2 * draw())
                phi = two_pi * draw()
                y = pos[j, 0] + dist * math.sin(phi)
                x = pos[j, 1] + dist * math.cos(phi)
                if not (0.0 <= y <= height - 1 and 0.0 <= x <= width - 1):
                    continue
            else:
                y = draw() * (height - 1)
                x = draw() * (width - 1)
            if count:
                dy = pos[:count, 0] - y
                dx = pos[:count, 1] - x
                d2 = dy * dy + dx * dx
                near_nuc = kept_nuc[:count] + (nuc_list[i] + 1.0)
                near_cell = kept_cell[:count] + cell_list[i]
                near_cell *= 0.45
                np.maximum(near_nuc, near_cell, out=near_nuc)
                near_nuc *= near_nuc
                if (d2 < near_nuc).any():
                    continue
            pos[count] = (y, x)
            kept_nuc[count] = nuc_list[i]
            kept_cell[count] = cell_list[i]
            keep.append(i)
            break

    count = len(keep)
    sel = np.asarray(keep, dtype=np.int64)
    return CellPopulation(
        centres=pos[:count].copy(),
        nucleus_axes=np.stack([nuc_major[sel], nuc_minor[sel]], axis=1),
        nucleus_angle=nuc_angle[sel],
        cell_offset=offset[sel],
        cell_axes=np.stack([cell_major[sel], cell_minor[sel]], axis=1),
        cell_angle=cell_angle[sel],
        nucleus_brightness=nuc_bright[sel],
        cell_brightness=cell_bright[sel],
        texture_position=texture_position[sel],
    )


def move_cells(
    rng: np.random.Generator,
    cells: CellPopulation,
    shape: tuple[int, int],
    *,
    step: float | None = None,
) -> CellPopulation:
    """Advance a population by one time point.

    Every cell moves by a Gaussian step, turns a little and changes its
    brightness by a few percent.  Moves that would make two nuclei overlap or
    take a nucleus centre out of the image are undone, so the result obeys the
    same rules as :func:`place_cells`.  Labels (cell order) are unchanged.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    cells : CellPopulation
        Population at the previous time point.
    shape : tuple of int
        ``(H, W)`` of the image.
    step : float, optional
        Standard deviation of the displacement in pixels; default 15 % of
        the mean nucleus major semi-axis.

    Returns
    -------
    CellPopulation
        Population at the next time point.
    """
    from scipy.spatial import cKDTree

    height, width = _check_shape(shape)
    n = len(cells)
    if n == 0:
        return cells
    nuc_major = cells.nucleus_axes[:, 0]
    if step is None:
        step = 0.15 * float(nuc_major.mean())
    old = cells.centres
    new = old + rng.normal(0.0, step, old.shape)
    new[:, 0] = np.clip(new[:, 0], 0.0, height - 1)
    new[:, 1] = np.clip(new[:, 1], 0.0, width - 1)
    search = 2.0 * float(nuc_major.max()) + 1.0
    for _ in range(n + 1):
        pairs = cKDTree(new).query_pairs(search, output_type="ndarray")
        if len(pairs) == 0:
            break
        a, b = pairs[:, 0], pairs[:, 1]
        dist = np.hypot(*(new[a] - new[b]).T)
        bad = dist < nuc_major[a] + nuc_major[b] + 1.0
        if not bad.any():
            break
        undo = np.unique(np.concatenate([a[bad], b[bad]]))
        if np.array_equal(new[undo], old[undo]):
            break  # cannot happen for a valid input population
        new[undo] = old[undo]
    return replace(
        cells,
        centres=new,
        nucleus_angle=cells.nucleus_angle + rng.normal(0.0, 0.1, n),
        cell_angle=cells.cell_angle + rng.normal(0.0, 0.1, n),
        nucleus_brightness=cells.nucleus_brightness * rng.lognormal(0.0, 0.05, n),
        cell_brightness=cells.cell_brightness * rng.lognormal(0.0, 0.05, n),
    )


def texture_tile(
    rng: np.random.Generator, size: int = 256, *, sigma: float = 2.0, contrast: float = 0.18
) -> NDArray[np.float32]:
    """A periodic tile of smooth multiplicative texture.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    size : int
        Side length of the square tile in pixels.
    sigma : float
        Correlation length (Gaussian smoothing) in pixels.
    contrast : float
        Standard deviation of the texture around 1.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float32 with mean ~1, clipped to >= 0.3.
    """
    noise = rng.standard_normal((size, size))
    smooth = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    smooth /= smooth.std()
    return np.clip(1.0 + contrast * smooth, 0.3, None).astype(np.float32)


def _ellipse_windows(
    centres: NDArray[np.float64],
    axes: NDArray[np.float64],
    angles: NDArray[np.float64],
    brightness: NDArray[np.float64],
    shape: tuple[int, int],
) -> list[tuple[float, ...]]:
    """Per-ellipse drawing parameters, computed for all ellipses at once.

    For each ellipse returns ``(y0, y1, x0, x1, cy, cx, A, B, C, slope,
    level, brightness)``: the bounding box of the ellipse and its soft edge
    (clipped to the image; may be empty), its centre, the coefficients of
    ``rho^2 = A dx^2 + B dx dy + C dy^2`` (``rho^2`` < 1 inside, 1 on the
    outline) and the soft-fill line ``intensity = level - slope * rho^2``
    (capped at `brightness`).  The distance inside the outline is
    approximated by ``minor * (1 - rho^2) / 2``, so the intensity is
    ``brightness * clip(0.5 + distance / EDGE_WIDTH, 0, 1)``.
    """
    major, minor = axes[:, 0], axes[:, 1]
    margin = EDGE_WIDTH * major / minor + 1.0
    am, bm = major + margin, minor + margin
    c, s = np.cos(angles), np.sin(angles)
    half_x = np.sqrt((am * c) ** 2 + (bm * s) ** 2)
    half_y = np.sqrt((am * s) ** 2 + (bm * c) ** 2)
    cy, cx = centres[:, 0], centres[:, 1]
    y0 = np.maximum(np.floor(cy - half_y), 0).astype(np.int64)
    y1 = np.minimum(np.ceil(cy + half_y) + 1, shape[0]).astype(np.int64)
    x0 = np.maximum(np.floor(cx - half_x), 0).astype(np.int64)
    x1 = np.minimum(np.ceil(cx + half_x) + 1, shape[1]).astype(np.int64)
    ia, ib = 1.0 / (major * major), 1.0 / (minor * minor)
    coef_a = c * c * ia + s * s * ib
    coef_c = s * s * ia + c * c * ib
    coef_b = 2.0 * c * s * (ia - ib)
    k = minor / (2.0 * EDGE_WIDTH)
    slope = brightness * k
    level = brightness * (0.5 + k)
    columns = (y0, y1, x0, x1, cy, cx, coef_a, coef_b, coef_c, slope, level, brightness)
    return list(zip(*(col.tolist() for col in columns), strict=True))


def _rho2(
    ys: NDArray[np.float32], xs: NDArray[np.float32], window: tuple[float, ...]
) -> NDArray[np.float32]:
    """``rho^2`` of one ellipse inside its bounding box (see _ellipse_windows)."""
    y0, y1, x0, x1, cy, cx, coef_a, coef_b, coef_c = window[:9]
    dy = ys[y0:y1] - cy
    dx = xs[x0:x1] - cx
    rho2 = np.multiply.outer(dy * coef_b, dx)
    rho2 += (dx * dx) * coef_a
    rho2 += ((dy * dy) * coef_c)[:, None]
    return rho2


def _texture_offsets(
    position: NDArray[np.float64], windows: list[tuple[float, ...]], size: tuple[int, int]
) -> list[tuple[int, int]]:
    """Top-left corner in the texture tile of each window's texture."""
    rows = np.array([w[1] - w[0] for w in windows], dtype=np.int64)
    cols = np.array([w[3] - w[2] for w in windows], dtype=np.int64)
    ty = (position[:, 0] * (size[0] - rows + 1)).astype(np.int64)
    tx = (position[:, 1] * (size[1] - cols + 1)).astype(np.int64)
    return list(zip(ty.tolist(), tx.tolist(), strict=True))


class SiteRenderer:
    """Renders populations into reusable buffers.

    Allocating (and first touching) several camera-sized arrays per site costs
    more than drawing the cells, so a renderer keeps its buffers: the arrays of
    the :class:`SiteRendering` returned by :meth:`render` are overwritten by
    the next call.  Copy them if they must outlive it.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the images.
    texture : numpy.ndarray
        ``(T, T)`` float32 multiplicative texture, e.g. from
        :func:`texture_tile`; tiled automatically when smaller than a cell.
    """

    def __init__(self, shape: tuple[int, int], texture: NDArray[np.float32]) -> None:
        self.shape = _check_shape(shape)
        self.texture = np.asarray(texture, dtype=np.float32)
        height, width = self.shape
        self._ys = np.arange(height, dtype=np.float32)
        self._xs = np.arange(width, dtype=np.float32)
        self._best = np.empty(self.shape, dtype=np.float32)
        self._result = SiteRendering(
            nuclei_labels=np.zeros(self.shape, dtype=np.uint16),
            cell_labels=np.zeros(self.shape, dtype=np.uint16),
            nuclei=np.zeros(self.shape, dtype=np.float32),
            cytoplasm=np.zeros(self.shape, dtype=np.float32),
        )

    def _texture_for(self, cells: CellPopulation) -> NDArray[np.float32]:
        needed = int(2 * (cells.cell_axes.max(initial=1.0) + 3 * EDGE_WIDTH + 4)) + 2
        texture = self.texture
        if texture.shape[0] < needed or texture.shape[1] < needed:
            reps = (-(-needed // texture.shape[0]), -(-needed // texture.shape[1]))
            self.texture = texture = np.tile(texture, reps)
        return texture

    def render(self, cells: CellPopulation) -> SiteRendering:
        """Render label images and noise-free stains of a population.

        Parameters
        ----------
        cells : CellPopulation
            The cells (at most :data:`MAX_CELLS`).

        Returns
        -------
        SiteRendering
            Labels (uint16) and stains (float32, counts above background),
            ``(H, W)`` each, living in this renderer's buffers.
        """
        if len(cells) > MAX_CELLS:
            raise ValueError(f"at most {MAX_CELLS} cells fit a uint16 label image")
        shape, ys, xs = self.shape, self._ys, self._xs
        texture = self._texture_for(cells)
        out = self._result
        best = self._best  # rho^2 of the cell owning each pixel
        best.fill(1.0)
        cell_labels = out.cell_labels
        cell_labels.fill(0)
        cytoplasm = out.cytoplasm
        cytoplasm.fill(0.0)
        nuclei_labels = out.nuclei_labels
        nuclei_labels.fill(0)
        nuclei = out.nuclei
        nuclei.fill(0.0)
        if len(cells) == 0:
            return out

        windows = _ellipse_windows(
            cells.cell_centres, cells.cell_axes, cells.cell_angle, cells.cell_brightness, shape
        )
        offsets = _texture_offsets(cells.texture_position[:, ::-1], windows, texture.shape)
        for label, (window, (ty, tx)) in enumerate(zip(windows, offsets, strict=True), 1):
            y0, y1, x0, x1 = window[:4]
            if y0 >= y1 or x0 >= x1:
                continue
            rho2 = _rho2(ys, xs, window)
            owned = best[y0:y1, x0:x1]
            closer = np.less(rho2, owned)
            np.minimum(owned, rho2, out=owned)
            np.copyto(cell_labels[y0:y1, x0:x1], label, where=closer)
            # Soft fill; values below 0 outside the edge vanish in the maximum.
            slope, level, bright = window[9:]
            val = np.multiply(rho2, -slope, out=rho2)
            val += level
            np.minimum(val, bright, out=val)
            val *= texture[ty : ty + y1 - y0, tx : tx + x1 - x0]
            patch = cytoplasm[y0:y1, x0:x1]
            np.maximum(patch, val, out=patch)

        windows = _ellipse_windows(
            cells.centres,
            cells.nucleus_axes,
            cells.nucleus_angle,
            cells.nucleus_brightness,
            shape,
        )
        offsets = _texture_offsets(cells.texture_position, windows, texture.shape)
        for label, (window, (ty, tx)) in enumerate(zip(windows, offsets, strict=True), 1):
            y0, y1, x0, x1 = window[:4]
            if y0 >= y1 or x0 >= x1:
                continue
            rho2 = _rho2(ys, xs, window)
            inside = np.less(rho2, 1.0)
            np.copyto(nuclei_labels[y0:y1, x0:x1], label, where=inside)
            np.copyto(cell_labels[y0:y1, x0:x1], label, where=inside)
            slope, level, bright = window[9:]
            val = np.multiply(rho2, -slope, out=rho2)
            val += level
            np.minimum(val, bright, out=val)
            val *= texture[ty : ty + y1 - y0, tx : tx + x1 - x0]
            patch = nuclei[y0:y1, x0:x1]
            np.maximum(patch, val, out=patch)
        return out


def render_site(
    cells: CellPopulation, shape: tuple[int, int], texture: NDArray[np.float32]
) -> SiteRendering:
    """Render label images and noise-free stains of a population.

    One-off convenience around :class:`SiteRenderer` (use a renderer when
    rendering many sites).

    Parameters
    ----------
    cells : CellPopulation
        The cells (at most :data:`MAX_CELLS`).
    shape : tuple of int
        ``(H, W)`` of the image.
    texture : numpy.ndarray
        ``(T, T)`` float32 multiplicative texture (:func:`texture_tile`).

    Returns
    -------
    SiteRendering
        Labels (uint16) and stains (float32, counts above background).
    """
    return SiteRenderer(shape, texture).render(cells)


def spot_field(
    rng: np.random.Generator,
    cells: CellPopulation,
    shape: tuple[int, int],
    *,
    spots_per_cell: float = 6.0,
    amplitude: float = 700.0,
    sigma: float = 1.2,
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Intensity of small diffraction-limited spots inside the cell bodies.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    cells : CellPopulation
        The cells; spots are uniform inside each cell ellipse.
    shape : tuple of int
        ``(H, W)`` of the image.
    spots_per_cell : float
        Mean (Poisson) number of spots per cell.
    amplitude : float
        Median peak intensity of a spot in counts.
    sigma : float
        Gaussian width of a spot in pixels.
    out : numpy.ndarray, optional
        ``(H, W)`` float32 C-contiguous array to write into (overwritten).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32, counts above background.
    """
    height, width = _check_shape(shape)
    if out is None:
        out = np.zeros((height, width), dtype=np.float32)
    elif out.shape != (height, width) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous float32 array of the given shape")
    else:
        out.fill(0.0)
    counts = rng.poisson(spots_per_cell, len(cells))
    owner = np.repeat(np.arange(len(cells)), counts)
    m = owner.size
    radius = 0.9 * np.sqrt(rng.random(m))
    phi = rng.uniform(0.0, 2.0 * math.pi, m)
    u = cells.cell_axes[owner, 0] * radius * np.cos(phi)
    v = cells.cell_axes[owner, 1] * radius * np.sin(phi)
    ang = cells.cell_angle[owner]
    centre = cells.cell_centres[owner]
    y = np.rint(centre[:, 0] + u * np.sin(ang) + v * np.cos(ang)).astype(np.int64)
    x = np.rint(centre[:, 1] + u * np.cos(ang) - v * np.sin(ang)).astype(np.int64)
    amp = rng.lognormal(math.log(amplitude), 0.4, m).astype(np.float32)

    half = max(1, math.ceil(3.0 * sigma))
    off = np.arange(-half, half + 1)
    stamp = np.exp(-(off[:, None] ** 2 + off[None, :] ** 2) / (2.0 * sigma * sigma))
    oy = np.repeat(off, off.size)
    ox = np.tile(off, off.size)
    py = y[:, None] + oy[None, :]
    px = x[:, None] + ox[None, :]
    weights = amp[:, None] * stamp.ravel().astype(np.float32)[None, :]
    inside = (py >= 0) & (py < height) & (px >= 0) & (px < width)
    np.add.at(out.reshape(-1), py[inside] * width + px[inside], weights[inside])
    return out


def channel_signal(
    rng: np.random.Generator,
    cells: CellPopulation,
    site: SiteRendering,
    channel: int,
    *,
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """Noise-free signal (counts above background) of one channel.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (only used for channels >= 2).
    cells : CellPopulation
        The cells of the site.
    site : SiteRendering
        Their rendering (:class:`SiteRenderer`).
    channel : int
        0-based channel index: 0 nuclei, 1 cytoplasm, >= 2 spots inside the
        cells on top of a dim copy of the cytoplasm (a different spot pattern
        per channel, i.e. per `rng`).
    out : numpy.ndarray, optional
        ``(H, W)`` float32 buffer for channels >= 2.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32.  For channels 0 and 1 this is the array stored in
        `site` itself (do not modify it).
    """
    if channel < 0:
        raise ValueError(f"channel must be >= 0, got {channel}")
    if channel == 0:
        return site.nuclei
    if channel == 1:
        return site.cytoplasm
    share = np.float32(0.35)  # fraction of the cytoplasmic stain in this channel
    # Spots are drawn 1/share as bright and everything is scaled at the end,
    # which avoids a temporary image.
    signal = spot_field(rng, cells, site.cytoplasm.shape, amplitude=700.0 / share, out=out)
    signal += site.cytoplasm
    signal *= share
    return signal


def defocus(
    signal: NDArray[np.float32], distance: float, nucleus_radius: float
) -> NDArray[np.float32]:
    """Blur a signal as seen `distance` z-steps away from the focal plane.

    Parameters
    ----------
    signal : numpy.ndarray
        ``(H, W)`` float32 in-focus signal.
    distance : float
        Distance from focus in z-steps (sign ignored).
    nucleus_radius : float
        Mean nucleus radius in pixels; the blur is ``0.2 * radius`` pixels per
        z-step, so it looks alike at every image size.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32; `signal` itself when `distance` is 0.
    """
    sigma = 0.2 * nucleus_radius * abs(distance)
    if sigma == 0:
        return signal
    return ndimage.gaussian_filter(signal, sigma, mode="nearest", truncate=3.0)


def vignetting_field(
    shape: tuple[int, int],
    *,
    strength: float = 0.4,
    centre: tuple[float, float] = (0.5, 0.5),
) -> NDArray[np.float32]:
    """Multiplicative illumination field with darker corners.

    ``v = 1 - strength * r^2``, ``r^2 = ((y - cy) / H)^2 + ((x - cx) / W)^2``
    times 2, so that with a centred optical axis the corners get
    ``1 - strength`` and the brightest pixel 1.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the image.
    strength : float
        Relative darkening at the corners of a centred field (0..0.95).
    centre : tuple of float
        Optical axis ``(y, x)`` as fractions of the image height and width.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 in ``(0, 1]``.
    """
    height, width = _check_shape(shape)
    if not 0.0 <= strength <= 0.95:
        raise ValueError(f"strength must be within 0..0.95, got {strength}")
    ry = (np.arange(height, dtype=np.float64) + 0.5) / height - centre[0]
    rx = (np.arange(width, dtype=np.float64) + 0.5) / width - centre[1]
    # 1 - strength * 2 * (ry^2 + rx^2), built as one float32 outer sum
    fy = (0.5 - 2.0 * strength * ry * ry).astype(np.float32)
    fx = (0.5 - 2.0 * strength * rx * rx).astype(np.float32)
    field = np.add.outer(fy, fx)
    np.clip(field, np.float32(0.05), np.float32(1.0), out=field)
    return field


class NoiseBank:
    """A reusable block of standard-normal numbers.

    Each image takes a window at a random offset, so images get different
    (shifted) noise while the expensive random draw happens only once.

    Parameters
    ----------
    size : int
        Number of values one window holds (pixels of one image).
    seed : int or sequence of int
        Seed of the bank's own generator.
    """

    def __init__(self, size: int, seed: int | list[int]) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = int(size)
        self._spare = max(self.size, 1 << 16)
        rng = np.random.default_rng(seed)
        self._values = rng.standard_normal(self.size + self._spare, dtype=np.float32)

    def window(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """Return ``(size,)`` float32 standard normals at a random offset."""
        start = int(rng.integers(0, self._spare + 1))
        return self._values[start : start + self.size]


def expose(
    signal: NDArray[np.float32],
    illumination: NDArray[np.float32],
    standard_normal: NDArray[np.float32],
    *,
    background: float = 200.0,
    gain: float = 1.0,
    read_noise: float = 5.0,
    out: NDArray[np.uint16] | None = None,
) -> NDArray[np.uint16]:
    """Turn a noise-free signal into a camera image.

    ``mean = illumination * (background + signal)``;
    ``image = mean + sqrt(gain * mean + read_noise^2) * z`` (Gaussian
    approximation of shot noise plus read noise), clipped to ``0..65535`` and
    truncated to integers.

    Parameters
    ----------
    signal : numpy.ndarray
        ``(H, W)`` float32, counts above background.
    illumination : numpy.ndarray
        ``(H, W)`` float32 vignetting field (:func:`vignetting_field`).
    standard_normal : numpy.ndarray
        ``(H * W,)`` float32 standard normals (:meth:`NoiseBank.window`).
    background : float
        Background (autofluorescence) in counts before vignetting.
    gain : float
        Counts per photo-electron (variance of the shot noise per count).
    read_noise : float
        Standard deviation of the camera read noise in counts.
    out : numpy.ndarray, optional
        ``(H, W)`` uint16 array to write into.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint16 image.
    """
    if signal.shape != illumination.shape:
        raise ValueError(f"signal {signal.shape} and illumination {illumination.shape} differ")
    n = signal.size
    if standard_normal.shape != (n,):
        raise ValueError(f"standard_normal must have shape ({n},)")
    if out is None:
        out = np.empty(signal.shape, dtype=np.uint16)
    elif out.shape != signal.shape or out.dtype != np.uint16 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous uint16 array shaped like signal")
    sig = np.ascontiguousarray(signal, dtype=np.float32).reshape(-1)
    ill = np.ascontiguousarray(illumination, dtype=np.float32).reshape(-1)
    res = out.reshape(-1)
    chunk = min(n, _CHUNK)
    mean_buf = np.empty(chunk, dtype=np.float32)
    sd_buf = np.empty(chunk, dtype=np.float32)
    bg, g, rv = np.float32(background), np.float32(gain), np.float32(read_noise**2)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        mean = mean_buf[: stop - start]
        sd = sd_buf[: stop - start]
        np.add(sig[start:stop], bg, out=mean)
        mean *= ill[start:stop]
        np.multiply(mean, g, out=sd)
        sd += rv
        np.sqrt(sd, out=sd)
        sd *= standard_normal[start:stop]
        mean += sd
        np.clip(mean, np.float32(0.0), np.float32(65535.0), out=mean)
        np.copyto(res[start:stop], mean, casting="unsafe")
    return out
