"""Shared machinery of the ``measure_*`` modules: input checks, object pixels, assignment.

A measurement module computes features of the *extract* objects (one row per
extract label) and hands them to :func:`assign`, which gives them to the
*assign* objects:

* The assign object that holds more than half of an extract object's pixels
  is that extract object's parent (when extract and assign objects are the
  same image, every object is its own parent). Extract objects lying mostly
  outside every assign object have no parent and are dropped.
* Without aggregation each assign object takes the values of its one child
  and NaN when it has none; an assign object with several children is an
  error (the values cannot be told apart: aggregate them).
* With aggregation each assign object gets ``Mean_<feature>``,
  ``Std_<feature>`` (population standard deviation) and ``Sum_<feature>``
  over its children, ignoring NaN values (NaN when there are none), and
  ``Count``, the number of children (0 when there are none).

The result is one :class:`pandas.DataFrame` indexed by every label present in
the assign objects (ascending, index name ``label``) with float64 columns.
Everything is vectorised over the object pixels with :func:`numpy.bincount`
and sparse matrix products; :class:`Objects` holds the pixel-to-object
grouping the modules compute their features with.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage, sparse

from jtmodules._plots import image_figure

#: statistics of aggregated measurements, in column order (``Count`` follows)
AGGREGATES = ("Mean", "Std", "Sum")

#: largest label for which labels are looked up in a table (else by search)
_TABLE_LABELS = 2**22

#: largest extract x assign count table filled densely (else counted sparsely)
_DENSE_PAIRS = 2**24


# ----------------------------------------------------------------------- checks


def check_labels(image, name: str) -> np.ndarray:
    """`image` as an array after checking it is a 2D label image (integers >= 0).

    Raises
    ------
    ValueError
        Naming `name`, when `image` is not 2D, not of an integer dtype (bool
        included) or has negative labels.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2D label image, got shape {image.shape}")
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"{name} must be a label image of integers (int32), got {image.dtype}")
    if image.size and image.min() < 0:
        raise ValueError(f"{name} must not have negative labels")
    return image


def check_objects(extract_objects, assign_objects) -> tuple[np.ndarray, np.ndarray]:
    """The extract and assign label images of a measurement module, checked.

    Raises
    ------
    ValueError
        When either is no label image or their shapes differ.
    """
    extract = check_labels(extract_objects, "extract_objects")
    target = check_labels(assign_objects, "assign_objects")
    check_shape(target, "assign_objects", extract.shape)
    return extract, target


def check_intensity(image, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """`image` as an array after checking it is an unsigned integer image of `shape`."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2D image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.unsignedinteger):
        raise ValueError(f"{name} must be an intensity image (uint8 or uint16), got {image.dtype}")
    check_shape(image, name, shape)
    return image


def check_shape(image: np.ndarray, name: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless `image` has the shape of the extract objects."""
    if image.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {image.shape} but extract_objects has shape {tuple(shape)}"
        )


def check_flag(value, name: str) -> bool:
    """`value` after checking it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_number(value, name: str, minimum: float = 0.0, strict: bool = False) -> float:
    """`value` as a float after checking it is a real number >= (or >) `minimum`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return value


def check_integers(values, name: str, minimum: int = 1) -> tuple[int, ...]:
    """`values` (a list or set of integers >= `minimum`) as a sorted tuple without repeats."""
    if isinstance(values, (numbers.Number, str)) or values is None:
        raise ValueError(f"{name} must be a list of integers, got {values!r}")
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a list of integers, got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    for item in items:
        if (
            isinstance(item, (bool, np.bool_))
            or not isinstance(item, numbers.Real)
            or item != int(item)
            or item < minimum
        ):
            raise ValueError(f"{name} must hold integers >= {minimum}, got {item!r}")
    return tuple(sorted({int(item) for item in items}))


# ---------------------------------------------------------------------- objects


@dataclass(frozen=True, eq=False)
class Objects:
    """The pixels of the objects of a label image, grouped by object.

    Attributes
    ----------
    labels : numpy.ndarray[numpy.int64]
        The labels present (0 excluded), ascending; shape (n,).
    counts : numpy.ndarray[numpy.int64]
        Pixels of each object; shape (n,).
    flat : numpy.ndarray[numpy.intp]
        Row-major flat index of every object pixel, ascending; shape (P,).
    index : numpy.ndarray[numpy.intp]
        Position in `labels` of the object of every pixel of `flat`.
    shape : tuple of int
        Shape (M, N) of the label image.
    """

    labels: np.ndarray
    counts: np.ndarray
    flat: np.ndarray
    index: np.ndarray
    shape: tuple[int, int]
    _table: np.ndarray | None = None

    @classmethod
    def of(cls, label_image: np.ndarray) -> Objects:
        """The objects of a (checked) label image."""
        raveled = label_image.ravel()
        flat = np.flatnonzero(raveled != 0)
        values = raveled[flat].astype(np.int64, copy=False)
        largest = int(values.max()) if values.size else 0
        if largest <= _TABLE_LABELS:
            all_counts = np.bincount(values, minlength=largest + 1)
            labels = np.flatnonzero(all_counts)
            labels = labels[labels > 0].astype(np.int64)
            table = np.full(largest + 1, -1, dtype=np.intp)
            table[labels] = np.arange(labels.size)
            return cls(labels, all_counts[labels], flat, table[values], label_image.shape, table)
        labels, index, counts = np.unique(values, return_inverse=True, return_counts=True)
        return cls(labels, counts, flat, index.astype(np.intp), label_image.shape)

    @property
    def n(self) -> int:
        """Number of objects."""
        return int(self.labels.size)

    def positions(self, values: np.ndarray) -> np.ndarray:
        """Position in `labels` of each label of `values`; -1 for 0 and labels not present."""
        values = np.asarray(values, dtype=np.int64)
        if self._table is not None:
            inside = (values >= 0) & (values < self._table.size)
            out = np.full(values.shape, -1, dtype=np.intp)
            out[inside] = self._table[values[inside]]
            return out
        where = np.searchsorted(self.labels, values)
        where = np.minimum(where, max(self.n - 1, 0))
        found = self.labels[where] == values if self.n else np.zeros(values.shape, bool)
        return np.where(found, where, -1).astype(np.intp)

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (float64) of every object pixel."""
        rows, columns = np.divmod(self.flat, self.shape[1])
        return rows.astype(np.float64), columns.astype(np.float64)

    def total(self, values: np.ndarray) -> np.ndarray:
        """Sum of per-pixel `values` over each object; shape (n,)."""
        return np.bincount(self.index, weights=values, minlength=self.n)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of per-pixel `values` over each object; shape (n,)."""
        return self.total(values) / self.counts

    def boxes(self, label_image: np.ndarray | None = None) -> np.ndarray:
        """Bounding box ``(row_start, column_start, row_stop, column_stop)`` per object.

        Shape (n, 4), int64; the stops are exclusive. Pass the label image the
        objects are of to find the boxes faster.
        """
        out = np.zeros((self.n, 4), dtype=np.int64)
        if not self.n:
            return out
        if label_image is not None and self._table is not None:
            slices = ndimage.find_objects(label_image, max_label=int(self.labels[-1]))
            for i, label in enumerate(self.labels):
                rows, columns = slices[label - 1]
                out[i] = (rows.start, columns.start, rows.stop, columns.stop)
            return out
        rows, columns = np.divmod(self.flat, self.shape[1])
        out[:, 0], out[:, 1] = self.shape
        np.minimum.at(out[:, 0], self.index, rows)
        np.minimum.at(out[:, 1], self.index, columns)
        np.maximum.at(out[:, 2], self.index, rows + 1)
        np.maximum.at(out[:, 3], self.index, columns + 1)
        return out

    def crops(
        self,
        label_image: np.ndarray,
        pad: int = 1,
        boxes: np.ndarray | None = None,
        which: np.ndarray | None = None,
    ) -> Iterator[tuple[int, tuple[int, int], np.ndarray]]:
        """Each object (or those at positions `which`) as ``(position, (row, column), mask)``.

        `mask` is the object's bool mask over its bounding box with `pad`
        background pixels on every side (also at the image border); ``(row,
        column)`` is the image position of the mask's pixel (0, 0). `boxes`
        are :meth:`boxes` when already known.
        """
        if boxes is None:
            boxes = self.boxes(label_image)
        padded = np.pad(label_image, pad)
        for i in range(self.n) if which is None else which:
            r0, c0, r1, c1 = boxes[i]
            mask = padded[r0 : r1 + 2 * pad, c0 : c1 + 2 * pad] == self.labels[i]
            yield int(i), (int(r0) - pad, int(c0) - pad), mask


# ------------------------------------------------------------------- assignment


def parents(extract: Objects, assign_image: np.ndarray, assign: Objects) -> np.ndarray:
    """Label of the assign object holding more than half of each extract object; 0 for none.

    Returns
    -------
    numpy.ndarray[numpy.int64]
        Shape (extract.n,).
    """
    result = np.zeros(extract.n, dtype=np.int64)
    if not extract.n or not assign.n:
        return result
    under = assign.positions(assign_image.ravel()[extract.flat]) + 1  # 0: background
    width = assign.n + 1
    if extract.n * width <= _DENSE_PAIRS:
        table = np.bincount(extract.index * width + under, minlength=extract.n * width)
        table = table.reshape(extract.n, width)
        table[:, 0] = 0
        best = table.argmax(axis=1)
        overlap = table[np.arange(extract.n), best]
    else:
        inside = under > 0
        codes = extract.index[inside].astype(np.int64) * width + under[inside]
        codes, sizes = np.unique(codes, return_counts=True)
        child, parent = np.divmod(codes, width)
        order = np.lexsort((sizes, child))
        child, parent, sizes = child[order], parent[order], sizes[order]
        last = np.append(child[1:] != child[:-1], True)
        best = np.zeros(extract.n, dtype=np.int64)
        overlap = np.zeros(extract.n, dtype=np.int64)
        best[child[last]] = parent[last]
        overlap[child[last]] = sizes[last]
    held = 2 * overlap > extract.counts
    result[held] = assign.labels[best[held] - 1]
    return result


def assign(
    features: pd.DataFrame,
    extract: Objects,
    extract_image: np.ndarray,
    assign_image: np.ndarray,
    aggregate: bool,
) -> pd.DataFrame:
    """Give the features of the extract objects to the assign objects.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per extract object, in the order of ``extract.labels``.
    extract : Objects
        The extract objects (of `extract_image`).
    extract_image, assign_image : numpy.ndarray
        Label images of shape (M, N).
    aggregate : bool
        Summarise the children of each assign object (see the module doc).

    Returns
    -------
    pandas.DataFrame
        Indexed by the labels of `assign_image` (``label``), float64 columns.

    Raises
    ------
    ValueError
        Without `aggregate`, when an assign object holds several extract objects.
    """
    if assign_image is extract_image or np.array_equal(assign_image, extract_image):
        target, parent = extract, extract.labels
    else:
        target = Objects.of(assign_image)
        parent = parents(extract, assign_image, target)
    values = features.to_numpy(dtype=np.float64)
    held = parent > 0
    where = target.positions(parent[held])
    values = values[held]
    index = pd.Index(target.labels, name="label")
    if not aggregate:
        sizes = np.bincount(where, minlength=target.n)
        crowded = np.flatnonzero(sizes > 1)
        if crowded.size:
            example = target.labels[crowded[0]]
            children = extract.labels[held][where == crowded[0]]
            raise ValueError(
                f"{crowded.size} assign object(s) contain more than one extract object "
                f"(assign object {example} contains extract objects "
                f"{', '.join(str(c) for c in children[:5])}); set aggregate to true to "
                "summarise them"
            )
        out = np.full((target.n, values.shape[1]), np.nan)
        out[where] = values
        return pd.DataFrame(out, index=index, columns=list(features.columns))
    return _aggregate(values, where, target.n, list(features.columns), index)


def _aggregate(
    values: np.ndarray, where: np.ndarray, n: int, columns: list[str], index: pd.Index
) -> pd.DataFrame:
    """Mean, std, sum (NaN ignored) and count of the rows of `values` per group `where`."""
    members = sparse.csr_matrix(
        (np.ones(where.size), (where, np.arange(where.size))), shape=(n, where.size)
    )
    known = ~np.isnan(values)
    filled = np.where(known, values, 0.0)
    present = np.asarray(members @ known.astype(np.float64))
    total = np.asarray(members @ filled)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / present
        deviation = np.where(known, values - mean[where], 0.0)
        std = np.sqrt(np.asarray(members @ (deviation * deviation)) / present)
    total[present == 0] = np.nan
    count = np.bincount(where, minlength=n).astype(np.float64)
    blocks = [mean, std, total, count[:, None]]
    names = [f"{stat}_{c}" for stat in AGGREGATES for c in columns] + ["Count"]
    return pd.DataFrame(np.hstack(blocks), index=index, columns=names)


def frame(columns: dict[str, np.ndarray], extract: Objects) -> pd.DataFrame:
    """Features (name to values per extract object) as a DataFrame indexed by the labels."""
    data = {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
    return pd.DataFrame(data, index=pd.Index(extract.labels, name="label"))


# ----------------------------------------------------------------------- figure


def figure(
    measurements: pd.DataFrame,
    assign_image: np.ndarray,
    column: str | None = None,
    image: np.ndarray | None = None,
) -> str:
    """Plotly JSON: (`image`,) the assign objects and one feature painted onto them.

    `column` defaults to the first column of `measurements`; objects without a
    value are drawn as 0.
    """
    objects = Objects.of(assign_image)
    painted = np.zeros(assign_image.shape, dtype=np.float64)
    if column is None and len(measurements.columns):
        column = str(measurements.columns[0])
    if column is not None:
        values = measurements[column].reindex(objects.labels).to_numpy(dtype=np.float64)
        painted.ravel()[objects.flat] = np.nan_to_num(values, nan=0.0)[objects.index]
    panels = [] if image is None else [("image", image, "intensity")]
    panels += [("objects", assign_image, "label"), (column or "no features", painted, "intensity")]
    return image_figure(panels)
