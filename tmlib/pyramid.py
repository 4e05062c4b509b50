"""Building zoomable image pyramids: 8-bit display, canvases, tiles (reference §5.6).

Pixels are mapped to 8 bit through the layer's intensity window and copied
into a *canvas* (a block of the mosaic whose side is
a power-of-two number of tiles), and the canvas is halved level by level with
area interpolation, cutting 256×256 JPEG tiles at each level. A block thus
yields its part of every level down to a single tile; the levels above the
blocks are built the same way from a canvas of the blocks' top tiles.

Halving a whole canvas at once gives exactly the tiles that joining 2×2 child
tiles and halving them would give, because blocks are aligned to the tile grid
and 2×2 area averaging does not look across a tile pair's border.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np

from tmlib.mosaic import Box

TILE_SIZE = 256
#: JPEG quality of tiles (libjpeg scale 0-100)
JPEG_QUALITY = 90


def intensity_window(
    bit_depth: int,
    clip: bool,
    clip_value: int | None = None,
    upper_percentile: float | None = None,
    lower_percentile: float | None = None,
) -> tuple[int, int]:
    """The (lower, upper) raw intensities that map to 0 and 255.

    Without clipping the window is the whole range of `bit_depth`. With it,
    the upper bound is `clip_value` or else the upper percentile of the
    channel, the lower bound the lower percentile; the window is widened to
    at least 255 grey values so that the 8-bit ramp has no gaps.

    Raises
    ------
    ValueError
        When `clip_value` is outside ``1 .. 2**bit_depth - 1``, or clipping
        is asked for with neither a value nor percentiles.
    """
    top = (1 << bit_depth) - 1
    if not clip:
        return 0, top
    if clip_value is not None:
        if not 1 <= clip_value <= top:
            raise ValueError(
                f"clip value {clip_value} is outside the range of {bit_depth}-bit images (1..{top})"
            )
        upper = int(clip_value)
    elif upper_percentile is not None:
        upper = int(round(upper_percentile))
    else:
        raise ValueError("clipping needs a clip value or the channel's illumination statistics")
    lower = int(round(lower_percentile or 0))
    lower = min(lower, upper)
    if upper - lower < 255:
        upper = min(lower + 255, top)
        lower = max(upper - 255, 0)
    return lower, upper


def to_display(image: np.ndarray, lower: int, upper: int) -> np.ndarray:
    """Map raw intensities to 8 bit: `lower` and below to 0, `upper` and above to 255.

    Values in between are scaled linearly, ``round((v - lower) * 255 / (upper -
    lower))`` (OpenCV's saturating arithmetic; ~10x faster than a lookup table
    of 65536 entries).

    Parameters
    ----------
    image : ndarray, shape (M, N), dtype uint8 or uint16
        May be a view (a slice of a larger image).
    lower, upper : int
        The intensity window (:func:`intensity_window`).

    Returns
    -------
    ndarray, shape (M, N), dtype uint8
    """
    if upper <= lower:
        raise ValueError(f"empty intensity window [{lower}, {upper}]")
    shifted = cv2.subtract(image, lower) if lower > 0 else image  # saturates at 0
    return cv2.convertScaleAbs(shifted, alpha=255.0 / (upper - lower))


def overlap(
    origin: tuple[int, int], shape: tuple[int, int], box: Box
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Where a box of the mosaic falls on a canvas.

    Parameters
    ----------
    origin : (int, int)
        Mosaic pixel (y, x) of the canvas's top-left corner.
    shape : (int, int)
        Canvas height and width.
    box : Box
        An image's place in the mosaic.

    Returns
    -------
    ((slice, slice), (slice, slice)) or None
        The canvas region and the matching region of the image, or None when
        they do not overlap.
    """
    y0, x0 = max(box.y, origin[0]), max(box.x, origin[1])
    y1 = min(box.bottom, origin[0] + shape[0])
    x1 = min(box.right, origin[1] + shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    canvas = (slice(y0 - origin[0], y1 - origin[0]), slice(x0 - origin[1], x1 - origin[1]))
    image = (slice(y0 - box.y, y1 - box.y), slice(x0 - box.x, x1 - box.x))
    return canvas, image


def encode_tile(tile: np.ndarray) -> bytes:
    """JPEG bytes of a tile (shape (256, 256), uint8)."""
    ok, data = cv2.imencode(".jpg", tile, (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY))
    if not ok:
        raise RuntimeError("JPEG encoding of a tile failed")
    return data.tobytes()


def decode_tile(data: bytes | None) -> np.ndarray:
    """A tile as an array (black for None).

    Returns
    -------
    ndarray, shape (256, 256), dtype uint8
    """
    if data is None:
        return np.zeros((TILE_SIZE, TILE_SIZE), np.uint8)
    tile = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if tile is None:
        raise ValueError("a stored tile is not a valid JPEG image")
    return tile


def halve(canvas: np.ndarray) -> np.ndarray:
    """Downsample by 2 with area interpolation (odd sides are padded with black).

    Parameters
    ----------
    canvas : ndarray, shape (M, N), dtype uint8

    Returns
    -------
    ndarray, shape (ceil(M/2), ceil(N/2)), dtype uint8
    """
    pad_y, pad_x = canvas.shape[0] % 2, canvas.shape[1] % 2
    if pad_y or pad_x:
        canvas = np.pad(canvas, ((0, pad_y), (0, pad_x)))
    height, width = canvas.shape[0] // 2, canvas.shape[1] // 2
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)


def cut_tiles(
    canvas: np.ndarray, first_row: int, first_column: int, grid: tuple[int, int]
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The non-black tiles of a canvas as (row, column, tile).

    Parameters
    ----------
    canvas : ndarray, shape (M, N), dtype uint8
        Its top-left pixel is the top-left pixel of tile (first_row, first_column).
    grid : (int, int)
        Tile rows and columns of the level: tiles beyond are not cut.

    Yields
    ------
    row, column : int
    tile : ndarray, shape (256, 256), dtype uint8
        Padded with black at the canvas's lower and right edge.
    """
    rows = min(-(-canvas.shape[0] // TILE_SIZE), grid[0] - first_row)
    columns = min(-(-canvas.shape[1] // TILE_SIZE), grid[1] - first_column)
    for i in range(rows):
        band = canvas[i * TILE_SIZE : (i + 1) * TILE_SIZE]
        for j in range(columns):
            tile = band[:, j * TILE_SIZE : (j + 1) * TILE_SIZE]
            if not tile.any():
                continue
            if tile.shape != (TILE_SIZE, TILE_SIZE):
                tile = np.pad(
                    tile, ((0, TILE_SIZE - tile.shape[0]), (0, TILE_SIZE - tile.shape[1]))
                )
            yield first_row + i, first_column + j, tile


def pyramid_tiles(
    canvas: np.ndarray,
    level: int,
    first_row: int,
    first_column: int,
    grids: list[tuple[int, int]],
    stop_level: int = 0,
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Tiles of a canvas at `level` and of its halvings down to `stop_level`.

    Parameters
    ----------
    canvas : ndarray, shape (M, N), dtype uint8
        Starts at tile (first_row, first_column) of `level`; `first_row` and
        `first_column` must be divisible by ``2**(level - stop_level)``.
    level, stop_level : int
    grids : list of (int, int)
        Tile rows and columns of every level (index = level).

    Yields
    ------
    level, row, column : int
    tile : ndarray, shape (256, 256), dtype uint8
    """
    while True:
        for row, column, tile in cut_tiles(canvas, first_row, first_column, grids[level]):
            yield level, row, column, tile
        if level <= stop_level:
            return
        if first_row % 2 or first_column % 2:
            raise ValueError("a canvas must start at an even tile to be halved")
        canvas = halve(canvas)
        level, first_row, first_column = level - 1, first_row // 2, first_column // 2


def assemble(
    tiles: Callable[[int, int], bytes | None], grid: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """One level of a pyramid as a single image.

    Parameters
    ----------
    tiles : callable
        ``tiles(row, column)`` gives the JPEG bytes of a tile or None (black).
    grid : (int, int)
        Tile rows and columns of the level.
    size : (int, int)
        Pixel height and width of the level.

    Returns
    -------
    ndarray, shape `size`, dtype uint8
    """
    image = np.zeros((grid[0] * TILE_SIZE, grid[1] * TILE_SIZE), np.uint8)
    for row in range(grid[0]):
        for column in range(grid[1]):
            data = tiles(row, column)
            if data is not None:
                image[
                    row * TILE_SIZE : (row + 1) * TILE_SIZE,
                    column * TILE_SIZE : (column + 1) * TILE_SIZE,
                ] = decode_tile(data)
    return image[: size[0], : size[1]]
