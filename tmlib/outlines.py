"""Outlines of segmented objects in mosaic coordinates, and back to label images.

Map coordinates follow the original (reference §2.3): pixels at the highest
zoom level, x = column, y = -row. A site's objects are shifted by the site's
offset in the mosaic (:mod:`tmlib.mosaic`).
"""

from __future__ import annotations

import cv2
import numpy as np
import shapely
from scipy import ndimage


def label_outlines(
    labels: np.ndarray, offset: tuple[int, int] = (0, 0), polygons: bool = True
) -> tuple[np.ndarray, list, list]:
    """Polygon and centroid of every object of a label image.

    Holes are kept; an object in several parts keeps its largest; objects too
    small for a valid polygon become 3×3 squares around their centroid.

    Parameters
    ----------
    labels : ndarray, shape (M, N), integer
        0 is background.
    offset : (int, int)
        Mosaic (row, column) of the image's top-left pixel.
    polygons : bool
        Whether to compute polygons (else only centroids; the list is Nones).

    Returns
    -------
    ids : ndarray, shape (K,), int64
        The labels present, ascending.
    outlines : list of shapely.Polygon or None
    centroids : list of shapely.Point
    """
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError("a label image must not have negative labels")
    ids = np.flatnonzero(np.bincount(labels.ravel()))
    ids = ids[ids > 0].astype(np.int64)
    if ids.size == 0:
        return ids, [], []
    row0, col0 = offset
    boxes = ndimage.find_objects(labels.astype(np.int32, copy=False), max_label=int(ids[-1]))
    outlines, centroids = [], []
    for label in ids:  # each object on its bounding box: cheap however large the image
        rows, columns = boxes[label - 1]
        mask = labels[rows, columns] == label
        r, c = np.nonzero(mask)
        centroid = shapely.Point(col0 + columns.start + c.mean(), -(row0 + rows.start + r.mean()))
        centroids.append(centroid)
        if polygons:
            crop = np.ascontiguousarray(mask, dtype=np.uint8)
            outlines.append(
                _polygon(crop, row0 + rows.start, col0 + columns.start) or _square(centroid)
            )
        else:
            outlines.append(None)
    return ids, outlines, centroids


def _polygon(mask: np.ndarray, row0: int, col0: int) -> shapely.Polygon | None:
    # pad so that contours of objects at the crop border close
    padded = np.pad(mask, 1)
    contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    parts = []
    for i, contour in enumerate(contours):
        if hierarchy[0][i][3] != -1 or len(contour) < 3:
            continue  # a hole, handled with its parent, or a degenerate part
        holes = [
            _ring(contours[j], row0, col0)
            for j in range(len(contours))
            if hierarchy[0][j][3] == i and len(contours[j]) >= 3
        ]
        polygon = shapely.Polygon(_ring(contour, row0, col0), holes)
        if not polygon.is_valid:
            polygon = polygon.buffer(0)
        if isinstance(polygon, shapely.MultiPolygon):
            polygon = max(polygon.geoms, key=lambda g: g.area)
        if isinstance(polygon, shapely.Polygon) and not polygon.is_empty:
            parts.append(polygon)
    return max(parts, key=lambda p: p.area) if parts else None


def _ring(contour: np.ndarray, row0: int, col0: int) -> np.ndarray:
    points = contour[:, 0, :].astype(np.float64)  # (x, y) within the padded crop
    return np.column_stack([points[:, 0] - 1 + col0, -(points[:, 1] - 1 + row0)])


def _square(centroid: shapely.Point) -> shapely.Polygon:
    x, y = centroid.x, centroid.y
    return shapely.box(x - 1, y - 1, x + 1, y + 1)


def rasterize(
    polygons: list, labels: list[int], shape: tuple[int, int], offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """A label image of polygons in map coordinates (the inverse of :func:`label_outlines`).

    Returns
    -------
    ndarray, shape `shape`, int32
    """
    image = np.zeros(shape, np.int32)
    row0, col0 = offset
    pairs = [
        (p, x) for p, x in zip(polygons, labels, strict=True) if p is not None and not p.is_empty
    ]
    # largest outline first: an object lying in another's hole is drawn after that hole is cleared
    pairs.sort(key=lambda pair: -shapely.Polygon(pair[0].exterior).area)
    for polygon, label in pairs:
        exterior = _pixels(polygon.exterior.coords, row0, col0)
        cv2.fillPoly(image, [exterior], int(label))
        for interior in polygon.interiors:
            ring = _pixels(interior.coords, row0, col0)
            cv2.fillPoly(image, [ring], 0)
            # a hole's contour runs over the object's own pixels: draw them back
            cv2.polylines(image, [ring], True, int(label), 1)
    return image


def _pixels(coords, row0: int, col0: int) -> np.ndarray:
    xy = np.asarray(coords, dtype=np.float64)
    return np.round(np.column_stack([xy[:, 0] - col0, -xy[:, 1] - row0])).astype(np.int32)
