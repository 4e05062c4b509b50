"""Object types and user-provided segmentations (label images) of sites.

Uploaded label images are stored as jterator stores the objects it finds
(:mod:`tmlib.jterator.saving`): one :class:`~tmlib.models.Mapobject` per
object and site (partition key = site id), one
:class:`~tmlib.models.MapobjectSegmentation` per object in the
:class:`~tmlib.models.SegmentationLayer` of its type, time point and z-plane,
holding its outline and centroid in mosaic coordinates (x = column,
y = -row, :mod:`tmlib.outlines`) and its label. An object keeps its id across
time points and z-planes: a label already present at the site in another
layer of the type is the same object.

A site's image starts at the top-left of its box in the unaligned mosaic;
aligned images (``align=True``) start ``top_residue`` rows and
``left_residue`` columns further in and are smaller by the residues, as the
images jterator analyses (:func:`tmlib.site_images.site_image`).

Examples
--------
>>> labels = decode_label_image(npz_base64, expected_shape=(384, 512))  # doctest: +SKIP
>>> add_segmentation(experiment_id, type_id, site_id, 0, 0, labels)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tmlib.features import get_mapobject_type, sorted_features
from tmlib.maptiles import experiment_geometry, forget_objects
from tmlib.outlines import label_outlines, rasterize

#: the object types illuminati makes for plates, wells and sites: not editable
STATIC_TYPE_NAMES = ("Plates", "Wells", "Sites")
#: name of the array in an uploaded ``.npz``
NPZ_ARRAY = "segmentation"
#: labels are stored as 32-bit integers
MAX_LABEL = 2**31 - 1
_MAX_NAME = 50


# ------------------------------------------------------------------ object types


def _check_type_name(session: Session, name: str, exclude_id: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidInputError(f"an object type name must have 1 to {_MAX_NAME} characters")
    if name in STATIC_TYPE_NAMES:
        raise InvalidInputError(f"{name!r} is reserved for the static object type")
    query = sa.select(tm.MapobjectType.id).where(tm.MapobjectType.name == name)
    if exclude_id is not None:
        query = query.where(tm.MapobjectType.id != exclude_id)
    if session.scalar(query) is not None:
        raise AlreadyExistsError(f"an object type {name!r} exists already")
    return name


def _editable_type(session: Session, mapobject_type_id: int, action: str) -> tm.MapobjectType:
    kind = get_mapobject_type(session, mapobject_type_id)
    if kind.name in STATIC_TYPE_NAMES:
        raise InvalidInputError(
            f"the static object type {kind.name!r} cannot be {action}: illuminati makes it"
        )
    return kind


def create_mapobject_type(experiment_id: int, name: str) -> int:
    """Create an object type for user-provided segmentations (reference type ``Site``).

    Returns
    -------
    int
        The new type's id.

    Raises
    ------
    InvalidInputError
        Empty, too long (> 50 characters) or reserved name.
    AlreadyExistsError
        A type of that name exists.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        _check_type_name(session, name)
        kind = tm.MapobjectType(name=name, ref_type="Site", experiment_id=experiment_id)
        session.add(kind)
        session.flush()
        return kind.id


def rename_mapobject_type(experiment_id: int, mapobject_type_id: int, name: str) -> None:
    """Rename an object type (not the static ``Plates``, ``Wells``, ``Sites``).

    Raises
    ------
    NotFoundError, AlreadyExistsError, InvalidInputError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = _editable_type(session, mapobject_type_id, "renamed")
        kind.name = _check_type_name(session, name, exclude_id=kind.id)


def delete_mapobject_type(experiment_id: int, mapobject_type_id: int) -> None:
    """Delete an object type with its objects, outlines, features, values and tool results.

    One statement: everything else goes with it by ``ON DELETE CASCADE``.

    Raises
    ------
    NotFoundError
        Unknown type.
    InvalidInputError
        For the static types ``Plates``, ``Wells`` and ``Sites``.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = _editable_type(session, mapobject_type_id, "deleted")
        session.execute(sa.delete(tm.MapobjectType).where(tm.MapobjectType.id == kind.id))
    forget_objects(experiment_id)


# ------------------------------------------------------------------ one object


def mapobject_info(experiment_id: int, mapobject_id: int) -> dict:
    """Where an object is and what was measured: ``{id, type, mapobject_type,
    experiment_name, plate_name, well_name, well_pos_x, well_pos_y, tpoint, zplane,
    label, feature_values}``.

    Names and positions that do not apply to the object's reference type (the
    well of a plate object) are None; time point, z-plane and label are those
    of its first segmentation (lowest time point, then z-plane).
    ``mapobject_type`` is the type's name (as ``type``); ``feature_values``
    maps each feature's name to the object's value at that time point (0
    without a segmentation), None where it has none or it is not finite.

    Raises
    ------
    NotFoundError
        When the object does not exist.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        mapobject = session.get(tm.Mapobject, mapobject_id)
        if mapobject is None:
            raise NotFoundError(f"object {mapobject_id} does not exist")
        kind = session.get(tm.MapobjectType, mapobject.mapobject_type_id)
        info: dict = {
            "id": str(mapobject.id),
            "type": kind.name,
            "plate_name": None,
            "well_name": None,
            "well_pos_x": None,
            "well_pos_y": None,
            "tpoint": None,
            "zplane": None,
            "label": None,
        }
        ref_id = mapobject.ref_id if mapobject.ref_id is not None else mapobject.partition_key
        plate_id = None
        if kind.ref_type == "Plate":
            plate_id = ref_id
        else:
            well_id = ref_id
            if kind.ref_type != "Well":
                site = session.get(tm.Site, ref_id)
                well_id = site.well_id if site is not None else None
                if site is not None:
                    info["well_pos_x"], info["well_pos_y"] = site.x, site.y
            well = session.get(tm.Well, well_id) if well_id is not None else None
            if well is not None:
                info["well_name"], plate_id = well.name, well.plate_id
        plate = session.get(tm.Plate, plate_id) if plate_id is not None else None
        info["plate_name"] = plate.name if plate is not None else None
        seg, layer = tm.MapobjectSegmentation, tm.SegmentationLayer
        first = session.execute(
            sa.select(layer.tpoint, layer.zplane, seg.label)
            .join(layer, seg.segmentation_layer_id == layer.id)
            .where(seg.mapobject_id == mapobject.id)
            .order_by(layer.tpoint, layer.zplane, layer.id)
            .limit(1)
        ).first()
        if first is not None:
            info["tpoint"], info["zplane"], info["label"] = first
        info["mapobject_type"] = kind.name
        info["feature_values"] = _feature_values(session, kind, mapobject.id, info["tpoint"] or 0)
    with tm.utils.MainSession() as session:
        info["experiment_name"] = session.get(tm.ExperimentReference, experiment_id).name
    return info


def _feature_values(
    session: Session, kind: tm.MapobjectType, mapobject_id: int, tpoint: int
) -> dict[str, float | None]:
    """{feature name: value} of one object at a time point (None: no value, or not finite)."""
    names = [f.name for f in sorted_features(kind)]
    stored = session.scalar(
        sa.select(tm.FeatureValues.values).where(
            tm.FeatureValues.mapobject_id == mapobject_id, tm.FeatureValues.tpoint == tpoint
        )
    )
    row = np.full(len(names), np.nan)
    if stored is not None:
        known = stored[: len(names)]  # a row written before a feature was added is shorter
        row[: known.size] = known
    return {
        name: float(value) if np.isfinite(value) else None
        for name, value in zip(names, row.tolist(), strict=True)
    }


# ------------------------------------------------------------------ label images


def decode_label_image(
    npz_base64: str | bytes, expected_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """The label image of a base64-encoded ``.npz`` holding the array ``segmentation``.

    The array's header is checked before its data is read, so a wrong size
    costs nothing whatever the archive expands to.

    Parameters
    ----------
    npz_base64 : str or bytes
        Base64 (standard alphabet; whitespace ignored) of the ``.npz`` file.
    expected_shape : (int, int), optional
        The size the image must have.

    Returns
    -------
    ndarray, shape (M, N), int64
        Labels ≥ 0 (0 is background).

    Raises
    ------
    InvalidInputError
        Not base64, not an ``.npz``, no array ``segmentation``, not a 2D
        integer array, the wrong size, negative labels or labels ≥ 2^31.
    """
    if isinstance(npz_base64, str):
        npz_base64 = npz_base64.encode("ascii", errors="replace")
    try:
        raw = base64.b64decode(b"".join(npz_base64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("npz_file is not valid base64") from None
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except Exception:  # BadZipFile, or worse for archives broken in other ways
        raise InvalidInputError("npz_file is not an .npz archive (numpy.savez)") from None
    with archive:
        member = f"{NPZ_ARRAY}.npy"
        if member not in archive.namelist():
            names = ", ".join(n.removesuffix(".npy") for n in archive.namelist()) or "none"
            raise InvalidInputError(
                f"the .npz has no array {NPZ_ARRAY!r} (arrays: {names}); save the label "
                f"image with numpy.savez(file, {NPZ_ARRAY}=labels)"
            )
        try:
            with archive.open(member) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        except Exception as err:  # any failure to decode is bad input (zlib, encryption ...)
            raise InvalidInputError(
                f"array {NPZ_ARRAY!r} of the .npz is unreadable: {err}"
            ) from None
        if len(shape) != 2 or dtype.kind not in "iu":
            raise InvalidInputError(
                f"array {NPZ_ARRAY!r} must be a 2D integer label image, got {dtype} with "
                f"shape {shape}"
            )
        if expected_shape is not None and tuple(shape) != tuple(expected_shape):
            raise InvalidInputError(
                f"the label image has size {shape[0]}x{shape[1]} but the site's image is "
                f"{expected_shape[0]}x{expected_shape[1]}"
            )
        try:
            with archive.open(member) as stream:
                labels = np.lib.format.read_array(stream, allow_pickle=False)
        except Exception as err:  # any failure to decode is bad input (zlib, encryption ...)
            raise InvalidInputError(
                f"array {NPZ_ARRAY!r} of the .npz is unreadable: {err}"
            ) from None
    return check_label_image(labels, expected_shape)


def check_label_image(
    labels: np.ndarray, expected_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """A valid label image as int64 (see :func:`decode_label_image` for the rules).

    Raises
    ------
    InvalidInputError
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise InvalidInputError(
            f"a label image must be a 2D integer array, got {labels.dtype} {labels.shape}"
        )
    if expected_shape is not None and labels.shape != tuple(expected_shape):
        raise InvalidInputError(
            f"the label image has size {labels.shape[0]}x{labels.shape[1]} but the site's "
            f"image is {expected_shape[0]}x{expected_shape[1]}"
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise InvalidInputError(f"labels must not be negative, found {low}")
        if high > MAX_LABEL:
            raise InvalidInputError(f"labels must be below 2^31, found {high}")
    return labels.astype(np.int64, copy=False)


def site_frame(
    session: Session, experiment_id: int, site: tm.Site, align: bool = False
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a site's image lies in the mosaic and its size.

    Returns
    -------
    offset : (int, int)
        Mosaic (row, column) of the image's top-left pixel.
    shape : (int, int)
        (height, width): the site's size, or its aligned size with `align`.
    """
    boxes = experiment_geometry(session, experiment_id).boxes["Site"]
    i = int(np.searchsorted(boxes.ids, site.id))
    if i >= len(boxes.ids) or boxes.ids[i] != site.id:
        raise NotFoundError(f"site {site.id} is not in the experiment's mosaic")
    row0, col0 = int(-boxes.maxy[i]), int(boxes.minx[i])
    if align:
        return (row0 + site.top_residue, col0 + site.left_residue), (
            site.aligned_height,
            site.aligned_width,
        )
    return (row0, col0), (site.height, site.width)


def _site_type(session: Session, mapobject_type_id: int) -> tm.MapobjectType:
    kind = get_mapobject_type(session, mapobject_type_id)
    if kind.name in STATIC_TYPE_NAMES or kind.ref_type != "Site":
        raise InvalidInputError(
            f"object type {kind.name!r} has no segmentations of sites (static type)"
        )
    return kind


def _get_site(session: Session, site_id: int) -> tm.Site:
    site = session.get(tm.Site, site_id)
    if site is None:
        raise NotFoundError(f"site {site_id} does not exist")
    return site


def expected_shape(experiment_id: int, site_id: int, align: bool = False) -> tuple[int, int]:
    """(height, width) a label image of the site must have (aligned with `align`).

    Raises
    ------
    NotFoundError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        site = _get_site(session, site_id)
        return (site.aligned_height, site.aligned_width) if align else (site.height, site.width)


def _get_or_create_layer(
    session: Session, experiment_id: int, kind: tm.MapobjectType, tpoint: int, zplane: int
) -> tm.SegmentationLayer:
    layer = session.scalar(
        sa.select(tm.SegmentationLayer).where(
            tm.SegmentationLayer.mapobject_type_id == kind.id,
            tm.SegmentationLayer.tpoint == tpoint,
            tm.SegmentationLayer.zplane == zplane,
        )
    )
    if layer is None:
        # thresholds of segmented objects, as jterator's collect sets them (reference §7.5)
        max_zoom = experiment_geometry(session, experiment_id).max_zoom
        polygon_thresh = max(max_zoom - 4, 0)
        layer = tm.SegmentationLayer(
            mapobject_type_id=kind.id,
            tpoint=tpoint,
            zplane=zplane,
            polygon_thresh=polygon_thresh,
            centroid_thresh=max(polygon_thresh - 2, 0),
        )
        session.add(layer)
        session.flush()
    return layer


def add_segmentation(
    experiment_id: int,
    mapobject_type_id: int,
    site_id: int,
    tpoint: int,
    zplane: int,
    labels: np.ndarray,
    align: bool = False,
) -> int:
    """Store the objects of a label image of a site (one transaction).

    What was stored for this type, site, time point and z-plane before is
    replaced, so uploading again is idempotent. A label present at the site
    in another layer of the type keeps its object id (and feature values);
    objects left without any outline are deleted.

    Parameters
    ----------
    labels : ndarray, shape (M, N), integer
        The site's size, or its aligned size with `align`; 0 is background.
    tpoint, zplane : int
        Which layer.
    align : bool
        Whether `labels` is of the aligned image.

    Returns
    -------
    int
        Number of objects stored.

    Raises
    ------
    NotFoundError
        Unknown type or site.
    InvalidInputError
        A static type, a label image of the wrong size or type, negative labels.
    """
    if not (0 <= tpoint <= MAX_LABEL and 0 <= zplane <= MAX_LABEL):
        raise InvalidInputError(f"tpoint and zplane must be in 0..2^31-1, got {tpoint}, {zplane}")
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = _site_type(session, mapobject_type_id)
        site = _get_site(session, site_id)
        offset, shape = site_frame(session, experiment_id, site, align)
        labels = check_label_image(labels, shape)
        # outlines on consecutive labels: label_outlines' work grows with the largest label
        present = np.unique(labels)
        lookup = np.concatenate([[0], present[present > 0]])
        compact = np.searchsorted(lookup, labels).astype(np.int32)
        ids, polygons, centroids = label_outlines(compact, offset)
        originals = lookup[ids].tolist()

        # nothing written before here: bad input leaves the experiment untouched
        layer = _get_or_create_layer(session, experiment_id, kind, tpoint, zplane)
        seg, mo = tm.MapobjectSegmentation.__table__, tm.Mapobject.__table__
        type_layers = sa.select(tm.SegmentationLayer.id).where(
            tm.SegmentationLayer.mapobject_type_id == kind.id
        )
        known = dict(
            session.execute(
                sa.select(seg.c.label, sa.func.min(seg.c.mapobject_id))
                .where(
                    seg.c.partition_key == site_id,
                    seg.c.segmentation_layer_id.in_(type_layers),
                    seg.c.label.is_not(None),
                )
                .group_by(seg.c.label)
            ).all()
        )
        session.execute(
            sa.delete(seg).where(
                seg.c.segmentation_layer_id == layer.id, seg.c.partition_key == site_id
            )
        )
        new = [label for label in originals if label not in known]
        if new:
            created = session.scalars(
                sa.insert(tm.Mapobject).returning(tm.Mapobject.id, sort_by_parameter_order=True),
                [{"partition_key": site_id, "mapobject_type_id": kind.id, "ref_id": site_id}]
                * len(new),
            ).all()
            known.update(zip(new, created, strict=True))
        if originals:
            session.execute(
                sa.insert(tm.MapobjectSegmentation),
                [
                    {
                        "mapobject_id": known[label],
                        "segmentation_layer_id": layer.id,
                        "partition_key": site_id,
                        "geom_polygon": polygon,
                        "geom_centroid": centroid,
                        "label": label,
                    }
                    for label, polygon, centroid in zip(originals, polygons, centroids, strict=True)
                ],
            )
        # objects whose only outline was replaced (their values go with them)
        session.execute(
            sa.delete(mo).where(
                mo.c.mapobject_type_id == kind.id,
                mo.c.partition_key == site_id,
                ~sa.exists().where(seg.c.mapobject_id == mo.c.id),
            )
        )
    forget_objects(experiment_id)  # this process's vector tiles show the new outlines at once
    return len(originals)


def upload_segmentation(
    experiment_id: int,
    mapobject_type_id: int,
    site_id: int,
    tpoint: int,
    zplane: int,
    npz_base64: str | bytes,
    align: bool = False,
) -> int:
    """Decode a base64 ``.npz`` label image and store it (:func:`add_segmentation`).

    Raises
    ------
    NotFoundError, InvalidInputError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        _site_type(session, mapobject_type_id)
    labels = decode_label_image(npz_base64, expected_shape(experiment_id, site_id, align))
    return add_segmentation(experiment_id, mapobject_type_id, site_id, tpoint, zplane, labels,
                            align)  # fmt: skip


def get_segmentation(
    experiment_id: int,
    mapobject_type_id: int,
    site_id: int,
    tpoint: int = 0,
    zplane: int = 0,
    align: bool = False,
) -> np.ndarray:
    """The label image of a type's objects at a site, rasterised from their outlines.

    Equal to an uploaded label image whose objects are single connected
    regions of more than a few pixels.

    Returns
    -------
    ndarray, shape (H, W), int32
        The site's size, or its aligned size with `align`.

    Raises
    ------
    NotFoundError
        Unknown type or site, or the type has no segmentation layer at that
        time point and z-plane.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = _site_type(session, mapobject_type_id)
        site = _get_site(session, site_id)
        offset, shape = site_frame(session, experiment_id, site, align)
        layer_id = session.scalar(
            sa.select(tm.SegmentationLayer.id).where(
                tm.SegmentationLayer.mapobject_type_id == kind.id,
                tm.SegmentationLayer.tpoint == tpoint,
                tm.SegmentationLayer.zplane == zplane,
            )
        )
        if layer_id is None:
            raise NotFoundError(
                f"object type {kind.name!r} has no segmentation at tpoint {tpoint}, zplane {zplane}"
            )
        seg = tm.MapobjectSegmentation.__table__
        rows = session.execute(
            sa.select(seg.c.geom_polygon, seg.c.label).where(
                seg.c.segmentation_layer_id == layer_id, seg.c.partition_key == site_id
            )
        ).all()
    return rasterize([r[0] for r in rows], [r[1] or 0 for r in rows], shape, offset)
