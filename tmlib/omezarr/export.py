"""Export an experiment's plates as OME-Zarr HCS plates (``tm_export ID ome-zarr OUT``).

Each TissueMAPS plate becomes one plate ``OUT/<plate>.zarr``::

    <plate>.zarr/            plate: rows and columns of the plate format, its wells
      B/03/                  well: one field per site
        0/                   field image: levels 0..n-1, axes (t) c (z) y x
          labels/nuclei/     an object type's label image (same levels, axes without c)
          tables/nuclei/     its features (AnnData, Fractal's feature_table layout)

Sites become fields ``0..n-1`` of their well in grid order (rows, then
columns); each field's position in the well is a translation in micrometres
(in pixels where the pixel size is unknown), from which an import rebuilds the
site grid. Channels keep their names (a multiplexing cycle's channels are
channels of the one site image, as TissueMAPS names them); the ``omero``
window of a channel is its illumination statistics' 0.1 and 99.9 percentiles
where corilla ran. Label values are the objects' labels; a feature table has
one row per object and time point, indexed by label.

A plate is written site by site (memory holds one site's planes) into a
hidden temporary directory beside its target and renamed into place when it
is complete, so an interrupted export leaves no half plate; a later export
removes what a killed one left.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

import tmlib.models as tm
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.omezarr import layout, metadata
from tmlib.plates import PLATE_DIMENSIONS, well_coordinates
from tmlib.progress import Progress
from tmlib.temporaries import remove_stale_temporaries, temporary_directory

if TYPE_CHECKING:
    import zarr
    from sqlalchemy.orm import Session

__all__ = ["ExportOptions", "export_experiment", "plate_filename", "validate"]

logger = logging.getLogger(__name__)

#: the percentiles of a channel's intensities that make its display window
WINDOW_PERCENTILES = (0.1, 99.9)

#: chunks are whole planes up to this side (a camera image is one chunk)
_CHUNK_SIDE = 4096


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`export_experiment` writes.

    Attributes
    ----------
    version : str
        NGFF version: ``"0.5"`` (Zarr v3) or ``"0.4"`` (Zarr v2).
    objects : tuple of str
        Object types written as label images (all types with `features` and
        no names given).
    features : bool
        Also write each exported type's features as a table per field.
    levels : int or None
        Pyramid levels; None: halve until both sides are at most 512.
    correct, align : bool
        Correct illumination (corilla's statistics) and align cycles (align's
        shifts, cropped to the region every cycle imaged).
    overwrite : bool
        Replace plates that exist in the output directory.
    """

    version: str = "0.5"
    objects: tuple[str, ...] = ()
    features: bool = False
    levels: int | None = None
    correct: bool = False
    align: bool = False
    overwrite: bool = False


@dataclass
class _Channel:
    id: int
    name: str
    color: str
    window: dict[str, float]
    correction: Any = None  # tmlib.illumination.Correction


@dataclass
class _Site:
    id: int
    y: int
    x: int
    height: int
    width: int
    residues: tuple[int, int, int, int]  # top, bottom, left, right


@dataclass
class _Plate:
    id: int
    name: str
    target: Path
    rows: list[str]
    columns: list[str]
    wells: dict[str, list[_Site]] = field(default_factory=dict)


@dataclass
class _Plan:
    """Everything decided before a byte is written."""

    options: ExportOptions
    experiment_id: int
    pixel_size: float | None
    channels: list[_Channel]
    tpoints: list[int]
    zplanes: list[int]
    kinds: dict[str, int]  # exported object types: name → id
    plates: list[_Plate]
    #: zarr's metadata of the levels of each shape of array (see _level_metadata)
    array_metadata: dict[tuple, list[Any]] = field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        """Axes of field images: t and z only where there are several."""
        return [
            *(["t"] if len(self.tpoints) > 1 else []),
            "c",
            *(["z"] if len(self.zplanes) > 1 else []),
            "y",
            "x",
        ]

    def plane_count(self) -> int:
        sites = sum(len(s) for p in self.plates for s in p.wells.values())
        return sites * len(self.channels) * len(self.tpoints) * len(self.zplanes)


def plate_filename(name: str) -> str:
    """``<plate>.zarr`` with characters that do not belong in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") + ".zarr"


def export_experiment(
    experiment_id: int,
    out: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    progress: bool = True,
) -> list[Path]:
    """Write each plate of an experiment as an OME-Zarr HCS plate in `out`.

    Parameters
    ----------
    experiment_id : int
    out : path-like
        Directory (created if missing) that receives one ``<plate>.zarr`` per
        plate (:func:`plate_filename`).
    options : ExportOptions
    progress : bool
        Draw a progress bar on a terminal.

    Returns
    -------
    list of Path
        The plates written.

    Raises
    ------
    InvalidInputError
        For bad options, an experiment without extracted images, missing
        illumination statistics with `correct`, unknown object types, or a
        plate that exists in `out` without `overwrite` (nothing is written).
    NotFoundError
        When the experiment does not exist.
    """
    started, cpu = time.perf_counter(), time.process_time()
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output {out} exists and is no directory")
    plan = _plan(experiment_id, out, options)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries([out])  # what killed exports left
    written = []
    with (
        Progress("export", files=plan.plane_count(), unit="plane", enabled=progress) as bar,
        layout.single_threaded_codecs(),
    ):
        for plate in plan.plates:
            written.append(_write_plate(plan, plate, bar))
    logger.info(
        "exported %d planes (%.1f MB of pixels) in %.2f s, %.2f CPU s",
        bar.files_done,
        bar.bytes_done / 1e6,
        time.perf_counter() - started,
        time.process_time() - cpu,
    )
    return written


# ---------------------------------------------------------------------- plan


def validate(experiment_id: int, out: str | os.PathLike, options: ExportOptions) -> None:
    """Check everything :func:`export_experiment` checks before it writes, writing nothing.

    Raises
    ------
    InvalidInputError, NotFoundError
        As :func:`export_experiment`.
    """
    _plan(experiment_id, Path(out).expanduser().absolute(), options)


def _plan(experiment_id: int, out: Path, options: ExportOptions) -> _Plan:
    version = layout.check_version(options.version)
    with tm.utils.ExperimentSession(experiment_id) as session:
        experiment = session.scalar(sa.select(tm.Experiment))
        if experiment is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist")
        files = tm.ChannelImageFile
        tpoints = sorted(session.scalars(sa.select(files.tpoint).distinct()))
        zplanes = sorted(session.scalars(sa.select(files.zplane).distinct()))
        if not tpoints:
            raise InvalidInputError(
                f"experiment {experiment_id} has no extracted images; run the "
                "image_conversion stage (metaextract, metaconfig, imextract) first"
            )
        channels = _channels(session, options.correct)
        kinds = _object_types(session, options)
        plates = _plates(session, out, experiment.plate_format, options.overwrite)
        layout.level_count(1, 1, options.levels)  # checks the number
        return _Plan(
            options=replace(options, version=version),
            experiment_id=experiment_id,
            pixel_size=experiment.pixel_size_um,
            channels=channels,
            tpoints=tpoints,
            zplanes=zplanes,
            kinds=kinds,
            plates=plates,
        )


def _channels(session: Session, correct: bool) -> list[_Channel]:
    from tmlib.illumination import Correction
    from tmlib.models.channel import closest_percentile

    channels = session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id)).all()
    result = []
    for index, channel in enumerate(channels):
        top = float((1 << channel.bit_depth) - 1)
        window = {"min": 0.0, "max": top, "start": 0.0, "end": top}
        stats_file = channel.illumstats_file
        has_stats = stats_file is not None and Path(stats_file.location).is_file()
        if correct and not has_stats:
            raise InvalidInputError(
                f"channel {channel.name!r} has no illumination statistics: run corilla first "
                "or leave out --correct"
            )
        correction = None
        if has_stats:
            if correct:  # the statistics images too: tens of MB, read only when needed
                stats = stats_file.get()
                correction = Correction.from_stats(stats.smoothed())
                percentiles = stats.percentiles
            else:
                percentiles = stats_file.get_percentiles()
            if percentiles:
                low, high = (closest_percentile(percentiles, p) for p in WINDOW_PERCENTILES)
                window.update(start=float(low), end=float(max(high, low + 1)))
        color = (
            "FFFFFF"
            if len(channels) == 1
            else layout.CHANNEL_COLORS[index % len(layout.CHANNEL_COLORS)]
        )
        result.append(_Channel(channel.id, channel.name, color, window, correction))
    return result


def _object_types(session: Session, options: ExportOptions) -> dict[str, int]:
    if not options.objects and not options.features:
        return {}
    from tmlib.segmentations import STATIC_TYPE_NAMES

    # objects segmented in sites; not the static Plates, Wells and Sites
    kinds = dict(
        session.execute(
            sa.select(tm.MapobjectType.name, tm.MapobjectType.id).where(
                tm.MapobjectType.ref_type == "Site",
                tm.MapobjectType.name.not_in(STATIC_TYPE_NAMES),
            )
        ).all()
    )
    names = list(options.objects) or (sorted(kinds) if options.features else [])
    unknown = [n for n in names if n not in kinds]
    if unknown:
        raise InvalidInputError(
            f"no object type {unknown[0]!r} segmented in the experiment's sites; "
            f"object types: {', '.join(sorted(kinds)) or 'none'}"
        )
    return {name: kinds[name] for name in dict.fromkeys(names)}


def _plates(session: Session, out: Path, plate_format: int, overwrite: bool) -> list[_Plate]:
    n_rows, n_columns = PLATE_DIMENSIONS.get(plate_format, (1, 1))
    plates = []
    targets: dict[Path, str] = {}
    for plate in session.scalars(sa.select(tm.Plate).order_by(tm.Plate.id)):
        target = out / plate_filename(plate.name)
        if target in targets:
            raise InvalidInputError(
                f"plates {targets[target]!r} and {plate.name!r} would both be written to {target}"
            )
        targets[target] = plate.name
        if target.exists() and not overwrite:
            raise InvalidInputError(f"{target} exists; give --overwrite to replace it")
        wells: dict[str, list[_Site]] = {}
        for well in sorted(plate.wells, key=lambda w: well_coordinates(w.name)):
            sites = sorted(well.sites, key=lambda s: (s.y, s.x))
            wells[well.name] = [
                _Site(s.id, s.y, s.x, s.height, s.width,
                      (s.top_residue, s.bottom_residue, s.left_residue, s.right_residue))
                for s in sites if not s.omitted
            ]  # fmt: skip
        wells = {name: sites for name, sites in wells.items() if sites}
        if not wells:
            continue
        used = [well_coordinates(name) for name in wells]
        rows = max(n_rows, 1 + max(r for r, _ in used))
        columns = max(n_columns, 1 + max(c for _, c in used))
        plates.append(
            _Plate(
                id=plate.id,
                name=plate.name,
                target=target,
                rows=[chr(ord("A") + r) for r in range(rows)],
                columns=[f"{c + 1:02d}" for c in range(columns)],
                wells=wells,
            )
        )
    if not plates:
        raise InvalidInputError("the experiment has no plate with sites; run metaconfig first")
    return plates


# --------------------------------------------------------------------- write


def _write_plate(plan: _Plan, plate: _Plate, bar: Progress) -> Path:
    version = plan.options.version
    tmp = temporary_directory(plate.target)
    try:
        wells = [layout.well_path(name) for name in plate.wells]
        field_count = max(len(s) for s in plate.wells.values())
        nodes = {"": metadata.plate(version, plate.name, plate.rows, plate.columns, wells,
                                    field_count)}  # fmt: skip
        for sites, path in zip(plate.wells.values(), wells, strict=True):
            nodes[path] = metadata.well(version, [str(i) for i in range(len(sites))])
        _create(plan, tmp, nodes)  # row groups come with the wells
        for sites, path in zip(plate.wells.values(), wells, strict=True):
            planes = _well_planes(plan, [s.id for s in sites])
            for index, site in enumerate(sites):
                _write_field(plan, tmp / path / str(index), site, planes.get(site.id, {}), bar)
        _replace(tmp, plate.target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote plate %r to %s", plate.name, plate.target)
    return plate.target


def _replace(tmp: Path, target: Path) -> None:
    """Rename the finished plate into place; an old plate goes only once the new one is there."""
    old = None
    if target.exists():
        old = temporary_directory(target)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _well_planes(plan: _Plan, site_ids: Sequence[int]) -> dict[int, dict[tuple, tuple]]:
    """site id → (t, c, z) index → (plane path, its shift (y, x) in its cycle), in one short
    session per well; shifts are (0, 0) unless the export aligns."""
    channel_index = {c.id: i for i, c in enumerate(plan.channels)}
    t_index = {t: i for i, t in enumerate(plan.tpoints)}
    z_index = {z: i for i, z in enumerate(plan.zplanes)}
    result: dict[int, dict[tuple, tuple]] = defaultdict(dict)
    with tm.utils.ExperimentSession(plan.experiment_id) as session:
        shifts = {}
        if plan.options.align:
            shifts = {
                (s.site_id, s.cycle_id): (s.y, s.x)
                for s in session.scalars(
                    sa.select(tm.SiteShift).where(tm.SiteShift.site_id.in_(site_ids))
                )
            }
        for f in session.scalars(
            sa.select(tm.ChannelImageFile).where(tm.ChannelImageFile.site_id.in_(site_ids))
        ):
            key = (t_index[f.tpoint], channel_index[f.channel_id], z_index[f.zplane])
            result[f.site_id][key] = (f.location, shifts.get((f.site_id, f.cycle_id), (0, 0)))
    return result


def _field_shape(site: _Site, align: bool) -> tuple[int, int]:
    if not align:
        return site.height, site.width
    top, bottom, left, right = site.residues
    return site.height - top - bottom, site.width - left - right


def _read_plane(plan: _Plan, site: _Site, channel: _Channel, entry: tuple | None) -> np.ndarray:
    from tmlib import storage
    from tmlib.alignment import shift_and_crop

    shape = _field_shape(site, plan.options.align)
    if entry is None:  # a plane the microscope failed to write: black
        return np.zeros(shape, np.uint16)
    pixels = storage.read_plane(entry[0])
    if channel.correction is not None:
        pixels = channel.correction(pixels)
    if plan.options.align:
        pixels = shift_and_crop(pixels, *entry[1], *site.residues)
    return np.ascontiguousarray(pixels)


def _levels(
    plan: _Plan, axes: list[str], levels: int, position: tuple[float, float]
) -> list[metadata.Level]:
    """Each level's scale (the pixel size, doubling) and translation (the field's place in
    its well), along `axes`."""
    size = plan.pixel_size or 1.0
    offset = [position[0] if a == "y" else position[1] if a == "x" else 0.0 for a in axes]
    return [
        ([size * 2**level if a in "yx" else 1.0 for a in axes], offset) for level in range(levels)
    ]


def _level_metadata(
    plan: _Plan, shape: tuple[int, ...], axes: list[str], levels: int, dtype: np.dtype
) -> list[Any]:
    """zarr's metadata of the arrays of a multiscale image (level ``l`` has 2**l times fewer
    rows and columns), made once per shape and reused by every field of that shape."""
    import zarr
    from zarr.storage import MemoryStore

    key = (shape, tuple(axes), levels, dtype.str)
    if key not in plan.array_metadata:
        memory = zarr.open_group(MemoryStore(), mode="w", zarr_format=_zarr_format(plan))
        found = []
        for level in range(levels):
            height, width = shape[-2:]
            chunks = (*([1] * (len(shape) - 2)), min(height, _CHUNK_SIDE), min(width, _CHUNK_SIDE))
            array = memory.create_array(
                str(level),
                shape=shape,
                dimension_names=axes if plan.options.version != "0.4" else None,
                **layout.array_options(plan.options.version, dtype, chunks),
            )
            found.append(array.metadata)
            shape = (*shape[:-2], (height + 1) // 2, (width + 1) // 2)
        plan.array_metadata[key] = found
    return plan.array_metadata[key]


def _zarr_format(plan: _Plan) -> int:
    return layout.NGFF_VERSIONS[plan.options.version]


def _create(plan: _Plan, directory: Path, nodes: dict[str, Any]) -> dict[str, Any]:
    """Create groups and arrays below `directory` in one go (``zarr.create_hierarchy``):
    one round trip to zarr's I/O thread for a field instead of one per node, which cost
    more than a level's pixels. Returns the nodes by path (``""``: the top group)."""
    import zarr
    from zarr.core.group import GroupMetadata
    from zarr.storage import LocalStore

    parsed = {
        path: GroupMetadata(attributes=node, zarr_format=_zarr_format(plan))
        if isinstance(node, dict)
        else node
        for path, node in nodes.items()
    }
    return dict(zarr.create_hierarchy(store=LocalStore(directory), nodes=parsed))


def _write_field(
    plan: _Plan, directory: Path, site: _Site, planes: dict[tuple, tuple], bar: Progress
) -> None:
    """The site's planes as a multiscale image in `directory` (created), then its labels."""
    axes = plan.axes
    height, width = _field_shape(site, plan.options.align)
    levels = layout.level_count(height, width, plan.options.levels)
    sizes = {"t": len(plan.tpoints), "c": len(plan.channels), "z": len(plan.zplanes)}
    shape = (*(sizes[a] for a in axes[:-2]), height, width)
    # the grid's spacing is the sites' full size, aligned or not
    size = plan.pixel_size or 1.0
    position = (site.y * site.height * size, site.x * site.width * size)
    dtype = np.dtype(np.uint8 if all(c.window["max"] <= 255 for c in plan.channels) else np.uint16)
    attributes = metadata.image(
        plan.options.version,
        axes,
        _levels(plan, axes, levels, position),
        units=plan.pixel_size is not None,
        name=f"site y{site.y:03d} x{site.x:03d}",
        channels=_omero_channels(plan),
    )
    arrays = _level_metadata(plan, shape, axes, levels, dtype)
    nodes = {"": attributes, **{str(level): m for level, m in enumerate(arrays)}}
    nodes = _create(plan, directory, nodes)
    arrays = [nodes[str(level)] for level in range(levels)]
    for t in range(sizes["t"]):
        for c, channel in enumerate(plan.channels):
            for z in range(sizes["z"]):
                index = _index(axes, t, c, z)
                pixels = _read_plane(plan, site, channel, planes.get((t, c, z)))
                pixels = pixels.astype(dtype, copy=False)
                for level, array in enumerate(arrays):
                    if level:
                        pixels = layout.downscale(pixels)
                    layout.write_plane(array, index, pixels)
                bar.advance(1, height * width * dtype.itemsize)
    if plan.kinds:
        _write_labels(plan, directory, site, levels, position)
    if plan.options.features:
        _write_tables(plan, nodes[""], site)


def _index(axes: list[str], t: int, c: int, z: int) -> tuple[int, ...]:
    """Index of one plane in an array with `axes` (t and z only where present)."""
    where = {"t": t, "c": c, "z": z}
    return tuple(where[a] for a in axes[:-2])


def _omero_channels(plan: _Plan) -> list[dict[str, Any]]:
    return [
        {
            "label": c.name,
            "color": c.color,
            "window": c.window,
            "active": True,
            "coefficient": 1.0,
            "family": "linear",
            "inverted": False,
        }
        for c in plan.channels
    ]


def _write_labels(
    plan: _Plan, field: Path, site: _Site, levels: int, position: tuple[float, float]
) -> None:
    """Each exported object type as a label image of the field (``labels/<type>``)."""
    from tmlib.segmentations import get_segmentation

    version = plan.options.version
    axes = [a for a in plan.axes if a != "c"]
    shape = (*(len(plan.tpoints if a == "t" else plan.zplanes) for a in axes[:-2]),
             *_field_shape(site, plan.options.align))  # fmt: skip
    arrays = _level_metadata(plan, shape, axes, levels, np.dtype(np.int32))
    steps = _levels(plan, axes, levels, position)
    nodes: dict[str, Any] = {"": metadata.labels(version, list(plan.kinds))}
    for name in plan.kinds:
        units = plan.pixel_size is not None
        nodes[name] = metadata.label_image(version, axes, steps, units, name)
        nodes.update({f"{name}/{level}": m for level, m in enumerate(arrays)})
    created = _create(plan, field / "labels", nodes)
    for name, kind_id in plan.kinds.items():
        arrays = [created[f"{name}/{level}"] for level in range(levels)]
        for t, tpoint in enumerate(plan.tpoints):
            for z, zplane in enumerate(plan.zplanes):
                index = tuple({"t": t, "z": z}[a] for a in axes[:-2])
                try:
                    pixels = get_segmentation(
                        plan.experiment_id, kind_id, site.id, tpoint, zplane, plan.options.align
                    )
                except NotFoundError:  # no objects of the type at this time point and z-plane
                    continue
                for level, array in enumerate(arrays):
                    if level:
                        pixels = layout.downscale_labels(pixels)
                    layout.write_plane(array, index, pixels)


def _write_tables(plan: _Plan, image: zarr.Group, site: _Site) -> None:
    """Features of each exported type at the site: an AnnData ``feature_table`` per type.

    The layout of Fractal's tools (ngio): float features in ``X`` (float64,
    as stored), index = label as text, ``mapobject_id`` and ``tpoint`` in
    ``obs``; attributes name the table type and the label image it describes.
    """
    import anndata
    import pandas as pd

    from tmlib.features import site_feature_rows, sorted_features

    tables = image.create_group("tables")
    with tm.utils.ExperimentSession(plan.experiment_id) as session:
        for name, kind_id in plan.kinds.items():
            kind = session.get(tm.MapobjectType, kind_id)
            features = [f.name for f in sorted_features(kind)]
            chunks = list(site_feature_rows(session, kind, site.id))
            tpoints, labels, ids, values = (
                [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
                if chunks
                else [np.zeros(0, np.int64)] * 3 + [np.zeros((0, len(features)))]
            )
            obs = pd.DataFrame(
                {"mapobject_id": ids, "tpoint": tpoints},
                index=pd.Index(labels.astype(str), name="label"),
            )
            table = anndata.AnnData(
                X=values.astype(np.float64).reshape(len(ids), len(features)),
                obs=obs,
                var=pd.DataFrame(index=pd.Index(features, dtype=str)),
            )
            _write_anndata(tables, name, table, _table_attributes(name, features))
    tables.attrs["tables"] = list(plan.kinds)


def _table_attributes(name: str, features: list[str]) -> dict[str, Any]:
    """What Fractal's tools (ngio) read of a ``feature_table`` for the label image `name`."""
    return {
        "type": "feature_table",
        "table_version": "1",
        "backend": "anndata",
        "region": {"path": f"../labels/{name}"},
        "index_key": "label",
        "index_type": "int",
        "instance_key": "label",
        "metadata_columns": ["mapobject_id", "tpoint"],
        "measurement_columns": features,
        "categorical_columns": [],
    }


def _write_anndata(parent: zarr.Group, name: str, table: Any, attributes: dict) -> None:
    """Write an AnnData table as the group `name` of `parent` (a group on disk).

    anndata writes its many small arrays one by one through the store; on a
    local disk each costs a round trip through zarr's event loop. The table is
    built in memory and its files written at once instead, 2-4 times faster.
    """
    import anndata
    import zarr
    from zarr.storage import MemoryStore

    files: dict[str, Any] = {}
    memory = zarr.open_group(MemoryStore(files), mode="w", zarr_format=parent.metadata.zarr_format)
    with anndata.settings.override(auto_shard_zarr_v3=False):  # readers without sharding
        anndata.io.write_elem(memory, name, table)
    memory[name].attrs.update(attributes)
    base = Path(parent.store.root) / parent.path  # plates are written to local directories
    for key, buffer in files.items():
        if not key.startswith(f"{name}/"):
            continue  # the in-memory root group
        path = base / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.to_bytes())
