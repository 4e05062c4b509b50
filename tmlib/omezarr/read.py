"""Reading OME-Zarr HCS plates (NGFF 0.4 on Zarr v2, NGFF 0.5 on Zarr v3).

A plate group lists its wells (``plate.wells[].path``, e.g. ``B/03``), each
well group lists its field images (``well.images[].path``) and each field
image is a ``multiscales`` group whose first dataset is the full-resolution
array (level 0), with axes ``t c z y x`` as present.  NGFF 0.4 keeps the
metadata in ``.zattrs``; 0.5 in ``zarr.json`` under ``attributes.ome``.

Two layouts are read:

* one field image per TissueMAPS site (fields ``0..n`` of a well, optionally
  placed by a ``translation`` transformation, in micrometres);
* Fractal's: one image per well that holds all fields stitched together,
  with a ROI table ``tables/FOV_ROI_table`` (AnnData; columns
  ``x_micrometer``, ``y_micrometer``, ``len_x_micrometer``,
  ``len_y_micrometer``, one row per field of view).  Each ROI is a site;
  its row index is the ``series`` of the field image.

A 2D plane of a field is addressed by the C-order flat index over the
non-yx axes in their order (t, c, z): with axes ``tczyx`` and sizes
``(T, C, Z)``, plane ``p`` is ``np.unravel_index(p, (T, C, Z))``.

Labels (``<field>/labels/<name>``) of a converted plate can be registered as
object types with :func:`import_labels`.

Examples
--------
>>> plate = open_plate("/data/plate.zarr")  # doctest: +SKIP
>>> [f.path for f in plate.fields]  # doctest: +SKIP
['B/03/0', 'B/03/1']
>>> read_plane("/data/plate.zarr/B/03/0", plane=1).shape  # doctest: +SKIP
(2160, 2560)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.omezarr.layout import NGFF_VERSIONS, ome_attributes, parse_well_path, well_path

if TYPE_CHECKING:
    import numpy as np
    import zarr
else:
    np = lazy_import("numpy")
    zarr = lazy_import("zarr")

__all__ = [
    "FOV_TABLE",
    "PLANE_AXES",
    "SUPPORTED_VERSIONS",
    "FieldImage",
    "FieldRoi",
    "OmeZarrPlate",
    "check_uniform",
    "field_name",
    "import_labels",
    "label_names",
    "ome_attributes",
    "open_field",
    "open_plate",
    "parse_well_path",
    "read_label_planes",
    "read_header",
    "read_plane",
    "well_of",
    "well_path",
]

#: NGFF versions this module reads
SUPPORTED_VERSIONS = tuple(NGFF_VERSIONS)
#: Fractal's table of the fields of view of a stitched well image
FOV_TABLE = "FOV_ROI_table"
#: axes that index planes, in the order NGFF puts them
PLANE_AXES = ("t", "c", "z")
#: pixel types TissueMAPS extracts
PIXEL_TYPES = ("uint8", "uint16")

#: micrometres per unit of the NGFF space units we convert
_UNITS_UM = {
    None: 1.0,
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "millimeter": 1e3,
    "centimeter": 1e4,
    "meter": 1e6,
    "angstrom": 1e-4,
}
_METADATA_FILES = {2: ".zattrs", 3: "zarr.json"}
#: longest object type name (:mod:`tmlib.segmentations`)
_MAX_TYPE_NAME = 50


# ----------------------------------------------------------------- well names


def field_name(location: str | os.PathLike) -> str:
    """Name of a field image inside its plate, from its path: ``.../B/03/0`` -> ``B/03/0``.

    The registered name of a field image (``<row>/<column>/<field>``) is the
    last three parts of wherever it is found.
    """
    return "/".join(Path(location).parts[-3:])


def well_of(field_path: str) -> str:
    """TissueMAPS well name of a field path: ``B/03/0`` -> ``B03``.

    Raises
    ------
    InvalidInputError
        If the first two parts are no well path.
    """
    try:
        return parse_well_path("/".join(field_path.split("/")[:2]))
    except ValueError:
        raise InvalidInputError(
            f"field image {field_path}: {'/'.join(field_path.split('/')[:2])!r} is no well "
            "path like B/03"
        ) from None


# ------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class FieldRoi:
    """One field of view of a stitched well image (a row of its ``FOV_ROI_table``).

    Attributes
    ----------
    name : str
        The row's index (e.g. ``FOV_1``).
    y, x, height, width : int
        Pixel box in the level-0 array.
    stage_y, stage_x : float
        Top-left corner in micrometres (``y_micrometer``, ``x_micrometer``).
    """

    name: str
    y: int
    x: int
    height: int
    width: int
    stage_y: float
    stage_x: float


@dataclass(frozen=True)
class FieldImage:
    """The level-0 array of one field image and what describes it.

    Attributes
    ----------
    path : str
        Path inside the plate, ``<row>/<column>/<field>`` (e.g. ``B/03/0``).
    axes : tuple of str
        Axis names in array order, a subsequence of ``t c z y x`` ending in
        ``y x``.
    shape : tuple of int
        Level-0 array shape, one size per axis.
    dtype : str
        numpy dtype name of the pixels.
    channels : tuple of str
        One name per channel: ``omero.channels[].label``, else the index.
    array_path : str
        Path of the level-0 array inside the field group.
    pixel_size : tuple of float or None
        ``(y, x)`` micrometres per pixel at level 0, None if not given.
    translation : tuple of float or None
        ``(y, x)`` position of the field's top-left pixel in micrometres.
    rois : tuple of FieldRoi
        Fields of view of a stitched (Fractal) image; empty otherwise.
    """

    path: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    channels: tuple[str, ...]
    array_path: str
    pixel_size: tuple[float, float] | None = None
    translation: tuple[float, float] | None = None
    rois: tuple[FieldRoi, ...] = ()

    @property
    def plane_axes(self) -> tuple[str, ...]:
        """The non-yx axes, in array order."""
        return self.axes[:-2]

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Sizes of the non-yx axes."""
        return self.shape[:-2]

    @property
    def n_planes(self) -> int:
        """Number of 2D planes (product of the non-yx sizes)."""
        return math.prod(self.plane_shape)

    @property
    def height(self) -> int:
        return self.shape[-2]

    @property
    def width(self) -> int:
        return self.shape[-1]

    @property
    def boxes(self) -> tuple[FieldRoi, ...]:
        """The sites of the field: its ROIs, or the whole image as one box."""
        if self.rois:
            return self.rois
        y, x = self.translation or (0.0, 0.0)
        return (FieldRoi("", 0, 0, self.height, self.width, y, x),)

    def coordinates(self, plane: int) -> dict[str, int]:
        """Index along each non-yx axis of flat plane index `plane`.

        Raises
        ------
        InvalidInputError
            If `plane` is not below :attr:`n_planes`.
        """
        if not 0 <= plane < self.n_planes:
            raise InvalidInputError(
                f"field image {self.path} has {self.n_planes} planes; plane {plane} asked for"
            )
        index = np.unravel_index(plane, self.plane_shape) if self.plane_shape else ()
        return {axis: int(i) for axis, i in zip(self.plane_axes, index, strict=True)}


@dataclass(frozen=True)
class OmeZarrPlate:
    """A validated OME-Zarr HCS plate.

    Attributes
    ----------
    path : Path
        The plate directory.
    version : str
        NGFF version (``0.4`` or ``0.5``).
    metadata_file : str
        Name of the plate's metadata file (``.zattrs`` or ``zarr.json``).
    fields : tuple of FieldImage
        Every field image of every listed well, in the plate's order.
    """

    path: Path
    version: str
    metadata_file: str
    fields: tuple[FieldImage, ...]


def _open_group(path: Path, what: str) -> zarr.Group:
    """The zarr group at `path` (v2 or v3), read-only, ignoring consolidated metadata."""
    try:
        return zarr.open_group(str(path), mode="r", use_consolidated=False)
    except Exception:  # zarr raises several kinds for "no group here"
        raise InvalidInputError(f"{path}: {what} is no Zarr group") from None


def _child(group: zarr.Group, path: str) -> Any | None:
    """The node at `path` below `group`, None where there is none."""
    try:
        return group[path]
    except (KeyError, FileNotFoundError, ValueError):
        return None


def _zarr_format(group: zarr.Group) -> int:
    return int(group.metadata.zarr_format)


def _version(attrs: Mapping[str, Any], key: str) -> str | None:
    """NGFF version of the metadata object `key` (0.5: ``ome.version``, 0.4: inside it)."""
    if "version" in attrs:
        return str(attrs["version"])
    entry = attrs.get(key)
    if isinstance(entry, list) and entry and isinstance(entry[0], Mapping):
        entry = entry[0]
    if isinstance(entry, Mapping) and "version" in entry:
        return str(entry["version"])
    return None


def _check_version(version: str | None, zarr_format: int, where: Path) -> str:
    """The version, if this module reads it with that Zarr format."""
    if version is None:
        raise InvalidInputError(f"{where}: the plate metadata give no NGFF version")
    if version not in SUPPORTED_VERSIONS:
        raise InvalidInputError(
            f"{where}: OME-Zarr (NGFF) version {version} is not supported; "
            f"supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    expected = NGFF_VERSIONS[version]
    if zarr_format != expected:
        raise InvalidInputError(
            f"{where}: NGFF {version} must be stored as Zarr v{expected}, found Zarr v{zarr_format}"
        )
    return version


def _not_a_plate(path: Path, attrs: Mapping[str, Any]) -> InvalidInputError:
    found = next((k for k in ("well", "multiscales", "labels") if k in attrs), None)
    inside = sorted(p.name for p in path.glob("*.zarr")) if path.is_dir() else []
    detail = f"; it holds an NGFF '{found}' group" if found else ""
    if inside:
        detail += f"; give the plate directory itself, e.g. {path / inside[0]}"
    return InvalidInputError(
        f"{path} is no OME-Zarr HCS plate: expected a zarr.json (NGFF 0.5) or .zattrs "
        f"(NGFF 0.4) with a 'plate' entry{detail}"
    )


def _axis_names(axes: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(a["name"] if isinstance(a, Mapping) else a) for a in axes)


def _axis_units(axes: Sequence[Any]) -> dict[str, str | None]:
    return {str(a["name"]): a.get("unit") for a in axes if isinstance(a, Mapping) and "name" in a}


def _check_axes(names: tuple[str, ...], where: str) -> None:
    """Axes must be a subsequence of ``t c z y x`` that ends in ``y x``."""
    order = "tczyx"
    ok = (
        len(names) >= 2
        and names[-2:] == ("y", "x")
        and all(n in order for n in names)
        and list(names) == sorted(names, key=order.index)
        and len(set(names)) == len(names)
    )
    if not ok:
        raise InvalidInputError(
            f"field image {where}: axes {''.join(names)!r} are not a subsequence of 'tczyx' "
            "ending in 'yx'"
        )


def _transform(transforms: Any, kind: str, n: int) -> list[float] | None:
    """The first `kind` (``scale``/``translation``) vector of a transformation list."""
    for t in transforms or ():
        if isinstance(t, Mapping) and t.get("type") == kind and isinstance(t.get(kind), list):
            values = [float(v) for v in t[kind]]
            return values if len(values) == n else None
    return None


def _yx_microns(values: list[float], axes: tuple[str, ...], units: Mapping[str, Any]) -> tuple:
    """The y and x entries of a per-axis vector, in micrometres."""
    return tuple(values[axes.index(a)] * _UNITS_UM.get(units.get(a), 1.0) for a in ("y", "x"))


def _placement(
    multiscale: Mapping[str, Any], axes: tuple[str, ...]
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """Level-0 pixel size and translation ``(y, x)`` in micrometres.

    The dataset's transformations come first, the multiscale's apply to
    their result: size = ds_scale * ms_scale, position = ds_translation *
    ms_scale + ms_translation.
    """
    n = len(axes)
    units = _axis_units(multiscale.get("axes", ()))
    dataset = multiscale["datasets"][0].get("coordinateTransformations")
    outer = multiscale.get("coordinateTransformations")
    ds_scale, ms_scale = _transform(dataset, "scale", n), _transform(outer, "scale", n)
    ds_shift, ms_shift = _transform(dataset, "translation", n), _transform(outer, "translation", n)
    ms = ms_scale or [1.0] * n
    size = None
    if ds_scale is not None:
        size = _yx_microns([a * b for a, b in zip(ds_scale, ms, strict=True)], axes, units)
        if not all(0 < s < math.inf for s in size):
            size = None
    shift = None
    if ds_shift is not None or ms_shift is not None:
        inner = [a * b for a, b in zip(ds_shift or [0.0] * n, ms, strict=True)]
        total = [a + b for a, b in zip(inner, ms_shift or [0.0] * n, strict=True)]
        shift = _yx_microns(total, axes, units)
    return size, shift  # type: ignore[return-value]


def _channel_names(attrs: Mapping[str, Any], n_channels: int, where: str) -> tuple[str, ...]:
    """``omero.channels[].label`` where all are given, else the channel indices."""
    channels = (attrs.get("omero") or {}).get("channels") or []
    labels = [c.get("label") if isinstance(c, Mapping) else None for c in channels]
    if len(labels) != n_channels or not all(isinstance(x, str) and x for x in labels):
        return tuple(str(i) for i in range(n_channels))
    if len(set(labels)) != len(labels):
        raise InvalidInputError(f"field image {where}: channel labels {labels} are not unique")
    return tuple(labels)


def _read_field(group: zarr.Group, path: str, directory: Path) -> FieldImage:
    """Describe the field image `group` in `directory` (found at `path` inside its plate)."""
    attrs = ome_attributes(group)
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales or not multiscales[0].get("datasets"):
        raise InvalidInputError(f"field image {path} has no 'multiscales' metadata")
    multiscale = multiscales[0]
    axes = _axis_names(multiscale.get("axes") or ())
    _check_axes(axes, path)
    array_path = str(multiscale["datasets"][0]["path"])
    array = _child(group, array_path)
    if array is None or not hasattr(array, "shape"):
        raise InvalidInputError(f"field image {path}: level-0 array {array_path!r} is missing")
    shape = tuple(int(s) for s in array.shape)
    if len(shape) != len(axes):
        raise InvalidInputError(
            f"field image {path}: {len(axes)} axes but the array has shape {shape}"
        )
    n_channels = shape[axes.index("c")] if "c" in axes else 1
    size, shift = _placement(multiscale, axes)
    field = FieldImage(
        path=path,
        axes=axes,
        shape=shape,
        dtype=str(array.dtype),
        channels=_channel_names(attrs, n_channels, path),
        array_path=array_path,
        pixel_size=size,
        translation=shift,
    )
    table = _child(group, f"tables/{FOV_TABLE}")
    if table is None:
        return field
    return _with_rois(field, directory / "tables" / FOV_TABLE)


# ------------------------------------------------------------------ ROI tables


def _table_columns(directory: str) -> tuple[list[str], dict[str, Any]]:
    """Row names and the columns (``X`` by ``var`` names, and ``obs``) of an AnnData table."""
    import anndata

    table = anndata.read_zarr(directory)
    columns: dict[str, Any] = {str(name): np.asarray(table.obs[name]) for name in table.obs.columns}
    if table.X is not None and table.n_vars:
        values = np.asarray(table.X.toarray() if hasattr(table.X, "toarray") else table.X)
        columns.update((str(n), values[:, i]) for i, n in enumerate(table.var_names))
    return [str(n) for n in table.obs_names], columns


def _with_rois(field: FieldImage, table: Path) -> FieldImage:
    """`field` with the fields of view of its ``FOV_ROI_table`` as pixel boxes."""
    where = f"{field.path}/tables/{FOV_TABLE}"
    if field.pixel_size is None:
        raise InvalidInputError(f"field image {field.path} has a {FOV_TABLE} but no pixel size")
    try:
        names, columns = _table_columns(str(table))
    except Exception as err:
        raise InvalidInputError(f"cannot read table {where}: {err}") from None
    needed = ("y_micrometer", "x_micrometer", "len_y_micrometer", "len_x_micrometer")
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InvalidInputError(f"table {where} lacks the column(s) {', '.join(missing)}")
    if not names:
        raise InvalidInputError(f"table {where} has no rows")
    rois = tuple(
        _roi(field, where, name, *(float(columns[c][i]) for c in needed))
        for i, name in enumerate(names)
    )
    return replace(field, rois=rois)


def _roi(
    field: FieldImage, where: str, name: str, y: float, x: float, height: float, width: float
) -> FieldRoi:
    """A ROI row as a pixel box, checked to lie in the image."""
    assert field.pixel_size is not None
    size_y, size_x = field.pixel_size
    box = (round(y / size_y), round(x / size_x), round(height / size_y), round(width / size_x))
    top, left, rows, cols = box
    if rows < 1 or cols < 1 or top < 0 or left < 0:
        raise InvalidInputError(f"table {where}: ROI {name} is empty or starts outside the image")
    if top + rows > field.height or left + cols > field.width:
        raise InvalidInputError(
            f"table {where}: ROI {name} (pixels {top}:{top + rows}, {left}:{left + cols}) "
            f"reaches beyond the {field.height}x{field.width} image"
        )
    return FieldRoi(name, top, left, rows, cols, y, x)


# ----------------------------------------------------------------- the plate


def _plate_root(path: Path) -> tuple[zarr.Group, dict[str, Any], str]:
    """The plate group, its ``plate`` metadata and its NGFF version (validated)."""
    if not path.is_dir():
        raise InvalidInputError(f"{path} does not exist or is no directory")
    if not any((path / name).is_file() for name in _METADATA_FILES.values()):
        raise _not_a_plate(path, {})
    root = _open_group(path, "the plate directory")
    attrs = ome_attributes(root)
    plate = attrs.get("plate")
    if not isinstance(plate, Mapping):
        raise _not_a_plate(path, attrs)
    version = _check_version(_version(attrs, "plate"), _zarr_format(root), path)
    return root, dict(plate), version


def _listed_paths(entries: Any, what: str, where: str) -> list[str]:
    if not isinstance(entries, list) or not entries:
        raise InvalidInputError(f"{where}: the metadata list no {what}")
    paths = [e.get("path") if isinstance(e, Mapping) else None for e in entries]
    if not all(isinstance(p, str) and p for p in paths):
        raise InvalidInputError(f"{where}: an entry of the {what} list has no 'path'")
    return paths  # type: ignore[return-value]


def _missing(kind: str, where: Path, names: list[str]) -> InvalidInputError:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return InvalidInputError(
        f"plate {where} lists {kind} that do not exist (missing {kind}): {shown}"
    )


def _well_fields(root: zarr.Group, wells: list[str], where: Path) -> list[tuple[str, zarr.Group]]:
    """``(path, group)`` of every listed field image, after checking that all exist."""
    groups = {w: _child(root, w) for w in wells}
    absent = [
        w
        for w, g in groups.items()
        if g is None or not isinstance(ome_attributes(g).get("well"), Mapping)
    ]
    if absent:
        raise _missing("wells", where, absent)
    fields: list[tuple[str, zarr.Group]] = []
    missing: list[str] = []
    for well in wells:
        well_attrs = ome_attributes(groups[well])["well"]
        for image in _listed_paths(well_attrs.get("images"), "images", f"well {well}"):
            group = _child(groups[well], image)
            if group is None or "multiscales" not in ome_attributes(group):
                missing.append(f"{well}/{image}")
            else:
                fields.append((f"{well}/{image}", group))
    if missing:
        raise _missing("fields", where, missing)
    return fields


def check_uniform(fields: Sequence[FieldImage]) -> None:
    """Raise if the fields of a plate differ in what makes their planes comparable.

    Axes, channels (count and names), pixel type and the size of a site's
    plane (the ROI size in stitched images) must be the same in every field.

    Raises
    ------
    InvalidInputError
        Naming the first two fields that differ and how.
    """
    if not fields:
        return
    first = fields[0]

    def traits(f: FieldImage) -> dict[str, Any]:
        sizes = sorted({(b.height, b.width) for b in f.boxes})
        return {
            "axes": "".join(f.axes),
            "channel count": len(f.channels),
            "channel names": list(f.channels),
            "pixel type": f.dtype,
            "plane shape": sizes if len(sizes) > 1 else sizes[0],
            "non-yx sizes": f.plane_shape,
        }

    reference = traits(first)
    for field in fields[1:]:
        for key, value in traits(field).items():
            if value != reference[key]:
                raise InvalidInputError(
                    f"fields {first.path} and {field.path} differ in their {key} "
                    f"({reference[key]} vs {value}); all fields of a plate must match"
                )


def open_plate(path: str | os.PathLike) -> OmeZarrPlate:
    """Read and validate an OME-Zarr HCS plate.

    Parameters
    ----------
    path : path-like
        The plate directory (``<name>.zarr``).

    Returns
    -------
    OmeZarrPlate
        The plate with every field image described.

    Raises
    ------
    InvalidInputError
        When `path` holds no plate, an unsupported NGFF version, a well or
        field that the metadata list but that does not exist, a well path
        that is no well name, a field image that cannot be read, or fields
        that differ (:func:`check_uniform`).
    """
    where = Path(path).expanduser().resolve()
    root, plate, version = _plate_root(where)
    wells = _listed_paths(plate.get("wells"), "wells", str(where))
    for well in wells:
        try:
            parse_well_path(well)
        except ValueError:
            raise InvalidInputError(
                f"plate {where}: well path {well!r} is no well like B/03 (one row letter and a "
                "column 1..99)"
            ) from None
    fields = tuple(
        _read_field(group, name, where / name) for name, group in _well_fields(root, wells, where)
    )
    check_uniform(fields)
    return OmeZarrPlate(where, version, _METADATA_FILES[_zarr_format(root)], fields)


# ---------------------------------------------------------------- one field


def _metadata_stamp(directory: Path) -> tuple[str, int]:
    for name in _METADATA_FILES.values():
        try:
            return name, (directory / name).stat().st_mtime_ns
        except FileNotFoundError:
            continue
    raise InvalidInputError(f"field image {directory} does not exist or has no Zarr metadata")


@functools.lru_cache(maxsize=256)
def _cached_field(directory: str, stamp: tuple[str, int]) -> FieldImage:
    group = _open_group(Path(directory), "the field image")
    attrs = ome_attributes(group)
    version = _version(attrs, "multiscales")
    if version is not None and version not in SUPPORTED_VERSIONS:
        raise InvalidInputError(
            f"field image {directory}: OME-Zarr (NGFF) version {version} is not supported; "
            f"supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    return _read_field(group, field_name(directory), Path(directory))


def open_field(directory: str | os.PathLike) -> FieldImage:
    """Describe the field image in `directory` (read again only when its metadata change).

    Raises
    ------
    InvalidInputError
        When the directory holds no readable field image.
    """
    path = Path(directory)
    return _cached_field(str(path), _metadata_stamp(path))


def _level0(directory: Path, field: FieldImage) -> zarr.Array:
    group = _open_group(directory, "the field image")
    return group[field.array_path]


def _check_pixel_type(field: FieldImage) -> None:
    if field.dtype not in PIXEL_TYPES:
        raise InvalidInputError(
            f"field image {field.path}: unsupported pixel type {field.dtype} "
            f"(expected {' or '.join(PIXEL_TYPES)})"
        )


def _box(field: FieldImage, series: int) -> FieldRoi:
    boxes = field.boxes
    if not 0 <= series < len(boxes):
        raise InvalidInputError(
            f"field image {field.path} has {len(boxes)} field(s) of view; series {series} asked for"
        )
    return boxes[series]


def read_header(directory: str | os.PathLike) -> tuple[int, int, int, str]:
    """Planes, height, width and pixel type of a field image's level-0 array.

    Returns
    -------
    tuple
        ``(planes, height, width, dtype)``: the product of the non-yx sizes,
        the whole image's size (not a ROI's) and ``uint8`` or ``uint16``.

    Raises
    ------
    InvalidInputError
        Unreadable field image, or another pixel type (names the field).
    """
    field = open_field(directory)
    _check_pixel_type(field)
    return field.n_planes, field.height, field.width, field.dtype


def read_plane(directory: str | os.PathLike, plane: int = 0, series: int = 0) -> np.ndarray:
    """One 2D plane of a field image, or of one of its ROIs.

    Parameters
    ----------
    directory : path-like
        The field image group.
    plane : int
        C-order flat index over the non-yx axes (see the module docstring).
    series : int
        ROI index of a stitched image with a ``FOV_ROI_table`` (only that
        box is read); 0 otherwise.

    Returns
    -------
    ndarray, shape (H, W), dtype uint8 or uint16
        H, W: the image's size, or the ROI's.

    Raises
    ------
    InvalidInputError
        Unreadable image, plane or series out of range, other pixel types.
    """
    path = Path(directory)
    field = open_field(path)
    _check_pixel_type(field)
    index = field.coordinates(plane)
    box = _box(field, series)
    selection = tuple(index[a] for a in field.plane_axes) + (
        slice(box.y, box.y + box.height),
        slice(box.x, box.x + box.width),
    )
    try:
        pixels = np.asarray(_level0(path, field)[selection])
    except InvalidInputError:
        raise
    except Exception as err:
        raise InvalidInputError(f"cannot read plane {plane} of field image {path}: {err}") from None
    return pixels


# -------------------------------------------------------------------- labels


def label_names(directory: str | os.PathLike) -> list[str]:
    """Names of the label images of a field image (``labels`` group), [] if none."""
    group = _child(_open_group(Path(directory), "the field image"), "labels")
    if group is None:
        return []
    names = ome_attributes(group).get("labels")
    if not isinstance(names, list):
        return []
    # names are paths inside the labels group: never above it
    return [str(n) for n in names if str(n) and "/" not in str(n) and not str(n).startswith(".")]


def _label_image(directory: Path, name: str) -> tuple[FieldImage, FieldImage]:
    """The field image in `directory` and its label image `name`, checked to match.

    Raises
    ------
    InvalidInputError
        A missing or unreadable label image, one of another size than the
        field image, a non-integer type, or several channels.
    """
    field = open_field(directory)
    where = f"label image {field.path}/labels/{name}"
    group = _open_group(directory / "labels" / name, where)
    label = _read_field(group, f"{field.path}/labels/{name}", directory / "labels" / name)
    if np.dtype(label.dtype).kind not in "iu":
        raise InvalidInputError(f"{where}: labels must be integers, found {label.dtype}")
    if (label.height, label.width) != (field.height, field.width):
        raise InvalidInputError(
            f"{where}: level 0 is {label.height}x{label.width}, the image "
            f"{field.height}x{field.width}; labels must have the image's resolution"
        )
    if "c" in label.axes and label.shape[label.axes.index("c")] != 1:
        raise InvalidInputError(f"{where}: labels must have one channel")
    return field, label


def read_label_planes(
    directory: str | os.PathLike, name: str, series: int = 0
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The 2D planes of a field image's label image ``labels/<name>`` at level 0.

    Parameters
    ----------
    directory : path-like
        The field image group.
    name : str
        Label image name.
    series : int
        ROI of a stitched image: only its box is returned.

    Yields
    ------
    t, z : int
        Index along the label image's t and z axes (0 where it has none).
    labels : ndarray, shape (H, W), integer
        H, W: the field's size or the ROI's.

    Raises
    ------
    InvalidInputError
        See :func:`_label_image`; also a series out of range.
    """
    path = Path(directory)
    field, label = _label_image(path, name)
    box = _box(field, series)
    array = _level0(path / "labels" / name, label)
    for plane in range(label.n_planes):
        index = label.coordinates(plane)
        selection = tuple(index[a] for a in label.plane_axes) + (
            slice(box.y, box.y + box.height),
            slice(box.x, box.x + box.width),
        )
        yield index.get("t", 0), index.get("z", 0), np.asarray(array[selection])


def _plane_sites(
    session: Any, acquisition_id: int, fields: Mapping[str, FieldImage]
) -> dict[tuple[str, int, int, int], tuple[int, int, int]]:
    """``(field, series, t, z) -> (site id, tpoint, zplane)`` from the extracted planes."""
    import sqlalchemy as sa

    import tmlib.models as tm

    mapping: dict[tuple[str, int, int, int], tuple[int, int, int]] = {}
    rows = session.execute(
        sa.select(
            tm.ChannelImageFile.site_id,
            tm.ChannelImageFile.tpoint,
            tm.ChannelImageFile.zplane,
            tm.ChannelImageFile.file_map,
        ).where(tm.ChannelImageFile.acquisition_id == acquisition_id)
    )
    for site_id, tpoint, zplane, file_map in rows:
        for name, series, plane in zip(
            file_map["files"], file_map["series"], file_map["planes"], strict=True
        ):
            index = fields[name].coordinates(plane)
            key = (name, series, index.get("t", 0), index.get("z", 0))
            mapping[key] = (site_id, tpoint, zplane)
    return mapping


def _acquisition_fields(
    experiment_id: int, plate: str, acquisition: str
) -> tuple[dict[str, str], dict[tuple[str, int, int, int], tuple[int, int, int]]]:
    """Locations of an acquisition's field images and where their planes went."""
    import sqlalchemy as sa

    import tmlib.models as tm
    from tmlib.registry import find_acquisition

    with tm.utils.ExperimentSession(experiment_id) as session:
        acq = find_acquisition(session, plate, acquisition)
        locations = {
            f.name: f.location
            for f in session.scalars(
                sa.select(tm.MicroscopeImageFile).where(
                    tm.MicroscopeImageFile.acquisition_id == acq.id
                )
            )
        }
        if not locations:
            raise InvalidInputError(
                f"acquisition {acquisition!r} of plate {plate!r} has no registered field images"
            )
        fields = {name: open_field(loc) for name, loc in locations.items()}
        sites = _plane_sites(session, acq.id, fields)
    if not sites:
        raise InvalidInputError(
            f"acquisition {acquisition!r} of plate {plate!r} has no extracted planes; run the "
            "image_conversion stage before importing labels"
        )
    return locations, sites


def _chosen_labels(locations: Mapping[str, str], names: Sequence[str] | None) -> list[str]:
    """The label names to import: `names`, or all found; each checked to be a usable type name."""
    from tmlib.segmentations import STATIC_TYPE_NAMES

    found = sorted({n for loc in locations.values() for n in label_names(loc)})
    if not names and not found:
        raise InvalidInputError("no field image of the acquisition has labels")
    chosen = list(dict.fromkeys(names)) if names else found
    absent = [n for n in chosen if n not in found]
    if absent:
        raise InvalidInputError(
            f"no field image has a label image {absent[0]!r}; found: {', '.join(found) or 'none'}"
        )
    for name in chosen:
        if name in STATIC_TYPE_NAMES or len(name) > _MAX_TYPE_NAME:
            raise InvalidInputError(
                f"label image {name!r} cannot be an object type: the name is reserved or longer "
                f"than {_MAX_TYPE_NAME} characters"
            )
    return chosen


def _label_jobs(locations: Mapping[str, str], name: str) -> list[tuple[str, int]]:
    """``(field, series)`` pairs with label image `name`, all checked before anything is written."""
    jobs = []
    for field_path, location in sorted(locations.items()):
        if name in label_names(location):
            field, _ = _label_image(Path(location), name)
            jobs.extend((field_path, series) for series in range(len(field.boxes)))
    return jobs


def import_labels(
    experiment: str | int,
    plate: str,
    acquisition: str,
    names: Sequence[str] | None = None,
    user: str | None = None,
) -> dict[str, int]:
    """Register the label images of an acquisition's field images as object types.

    Run after image conversion: each ``labels/<name>`` becomes an object
    type `name` (an existing type of that name is reused; its segmentations
    of these sites are replaced, so importing twice changes nothing). Each
    2D label plane goes to the site, time point and z-plane its field's
    pixels went to (for stitched images, each ROI's box to its site; label
    images without a z axis go to z-plane 0).

    Parameters
    ----------
    experiment : str or int
        Experiment name or id.
    plate, acquisition : str
        Names of the plate and of the acquisition whose fields are read.
    names : sequence of str, optional
        Label images to import; default: all found.
    user : str, optional
        Owner of the experiment, where the name is ambiguous.

    Returns
    -------
    dict
        Object type name -> number of objects stored (summed over sites
        and planes).

    Raises
    ------
    InvalidInputError
        No extracted planes, a label name that no field has, or a label
        image of another size or type than its field image.
    NotFoundError
        Unknown experiment, plate or acquisition.
    """
    import sqlalchemy as sa

    import tmlib.models as tm
    from tmlib import segmentations
    from tmlib.registry import find_experiment

    with tm.utils.MainSession() as session:
        experiment_id = find_experiment(session, experiment, user).id
    locations, sites = _acquisition_fields(experiment_id, plate, acquisition)
    chosen = _chosen_labels(locations, names)
    jobs = {name: _label_jobs(locations, name) for name in chosen}
    counts: dict[str, int] = {}
    for name, pairs in jobs.items():
        with tm.utils.ExperimentSession(experiment_id) as session:
            type_id = session.scalar(
                sa.select(tm.MapobjectType.id).where(tm.MapobjectType.name == name)
            )
        if type_id is None:
            type_id = segmentations.create_mapobject_type(experiment_id, name)
        counts[name] = 0
        for field_path, series in pairs:
            for t, z, labels in read_label_planes(locations[field_path], name, series):
                target = sites.get((field_path, series, t, z)) or sites.get(
                    (field_path, series, t, 0)
                )
                if target is None:
                    continue  # a plane whose pixels were not extracted
                site_id, tpoint, zplane = target
                counts[name] += segmentations.add_segmentation(
                    experiment_id, type_id, site_id, tpoint, zplane, labels
                )
    return counts
