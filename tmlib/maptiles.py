"""Map tiles: raster tiles from the pyramid containers, vector tiles of objects.

Coordinates follow the mosaic convention (reference §2.3): pixels at the
highest zoom level, x = column, y = -row. A vector tile (z, x, y) covers
``256 · 2^(max_zoom - z)`` pixels per side (§7.5); like a raster tile, its
``x`` counts columns rightwards and its ``y`` rows downwards from the top-left.

Vector tiles come in two encodings of the same objects: GeoJSON in map
coordinates (:func:`vector_tile`) and Mapbox Vector Tiles (:func:`mvt_tile`),
whose tile-local coordinates run from the tile's top-left corner, y down, in
:data:`MVT_EXTENT` units per tile side, as MVT clients expect.

There is no spatial index in the database: the objects of a tile are found
through the boxes of the sites (wells, plates) in the mosaic, which are
computed once per experiment and cached, so only segmentations whose
partition key (indexed) lies in the tile are loaded, then filtered with
vectorised shapely.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.mosaic import experiment_mosaic, pyramid_levels
from tmlib.tiles import TileReader

TILE_SIZE = 256


def tile_bounds(z: int, x: int, y: int, max_zoom: int) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a tile in map coordinates.

    Examples
    --------
    >>> tile_bounds(2, 1, 0, 2)
    (256, -256, 512, 0)
    """
    size = TILE_SIZE * 2 ** (max_zoom - z)
    return (x * size, -(y + 1) * size, (x + 1) * size, -y * size)


def check_tile(z: int, x: int, y: int, max_zoom: int) -> None:
    """Raise InvalidInputError for a zoom level or position outside the pyramid."""
    if not 0 <= z <= max_zoom:
        raise InvalidInputError(f"zoom level z={z} is outside 0..{max_zoom}")
    if x < 0 or y < 0:
        raise InvalidInputError(f"tile position x={x}, y={y} must not be negative")


# ------------------------------------------------------------------ raster


@functools.lru_cache(maxsize=1)
def black_tile() -> bytes:
    """A black 256×256 JPEG (what tiles that are not stored show)."""
    from tmlib.pyramid import encode_tile

    return encode_tile(np.zeros((TILE_SIZE, TILE_SIZE), np.uint8))


_LayerKey = tuple[tuple[str | None, ...], int, int]
_readers: dict[_LayerKey, tuple[str, int, TileReader]] = {}
_paths: dict[_LayerKey, tuple[str, int]] = {}
_lock = threading.Lock()
_INSTALLATION_VARS = ("TMAPS_DB_URL", "TMAPS_HOME", "TMAPS_CONFIG_FILE")


def _layer_key(experiment_id: int, channel_layer_id: int) -> _LayerKey:
    """Cache key of a layer: ids repeat across installations (a test process, or a
    Python session, may open several), so the installation is part of it."""
    installation = tuple(os.environ.get(name) for name in _INSTALLATION_VARS)
    return (installation, experiment_id, channel_layer_id)


def _layer_info(experiment_id: int, channel_layer_id: int) -> tuple[str, int]:
    key = _layer_key(experiment_id, channel_layer_id)
    found = _paths.get(key)
    if found is not None:
        return found
    with tm.utils.ExperimentSession(experiment_id) as session:
        layer = session.get(tm.ChannelLayer, channel_layer_id)
        if layer is None:
            raise NotFoundError(f"channel layer {channel_layer_id} does not exist")
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        found = (layer.location, (experiment.pyramid_depth or 1) - 1)
    _paths[key] = found
    return found


def raster_tile(experiment_id: int, channel_layer_id: int, z: int, x: int, y: int) -> bytes:
    """JPEG bytes of a raster tile (black where none is stored).

    Readers of the layers' containers stay open between calls (keyed by the
    container's path and modification time, so a rebuilt pyramid is seen).

    Raises
    ------
    NotFoundError
        Unknown layer, or its pyramid is not built.
    InvalidInputError
        A zoom level outside the pyramid or a negative position.
    """
    key = _layer_key(experiment_id, channel_layer_id)
    path, max_zoom = _layer_info(experiment_id, channel_layer_id)
    check_tile(z, x, y, max_zoom)
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        _paths.pop(key, None)
        # a reader left open would keep a deleted experiment's container on disk;
        # dropped, not closed: another thread may still be reading from it
        _readers.pop(key, None)
        raise NotFoundError(
            f"channel layer {channel_layer_id} has no pyramid; run illuminati"
        ) from None
    cached = _readers.get(key)
    if cached is None or cached[0] != path or cached[1] != mtime:
        with _lock:
            cached = _readers.get(key)
            if cached is None or cached[0] != path or cached[1] != mtime:
                _paths.pop(key, None)
                path, max_zoom = _layer_info(experiment_id, channel_layer_id)
                cached = (path, mtime, TileReader(path))
                _readers[key] = cached
    if x >= 2**24 or y >= 2**24:
        return black_tile()
    return cached[2].get_tile(z, y, x) or black_tile()


def raster_tile_version(experiment_id: int, channel_layer_id: int) -> int:
    """Modification time (ns) of the container serving a layer (for ETags); 0 if unknown."""
    cached = _readers.get(_layer_key(experiment_id, channel_layer_id))
    return cached[1] if cached else 0


# ------------------------------------------------------------------ vector


@dataclass(frozen=True)
class Boxes:
    """Mosaic boxes of one kind of partition, as arrays in map coordinates."""

    ids: np.ndarray
    minx: np.ndarray
    miny: np.ndarray
    maxx: np.ndarray
    maxy: np.ndarray

    def intersecting(self, bounds: Sequence[float]) -> list[int]:
        minx, miny, maxx, maxy = bounds
        hit = (self.minx <= maxx) & (self.maxx >= minx) & (self.miny <= maxy) & (self.maxy >= miny)
        return self.ids[hit].tolist()


@dataclass(frozen=True)
class ExperimentGeometry:
    max_zoom: int
    boxes: dict[str, Boxes]  # by reference type


_geometry: dict[tuple[int, tuple], ExperimentGeometry] = {}


def _signature(session: Session) -> tuple:
    return tuple(
        session.execute(
            sa.select(
                sa.select(sa.func.count(tm.Site.id)).scalar_subquery(),
                sa.select(sa.func.max(tm.Site.id)).scalar_subquery(),
                sa.select(sa.func.max(tm.Well.id)).scalar_subquery(),
                sa.select(sa.func.max(tm.Plate.id)).scalar_subquery(),
                sa.select(sa.func.max(tm.Experiment.pyramid_depth)).scalar_subquery(),
            )
        ).one()
    )


def experiment_geometry(session: Session, experiment_id: int) -> ExperimentGeometry:
    """Max zoom and the boxes of plates, wells and sites (cached per experiment layout)."""
    key = (experiment_id, _signature(session))
    found = _geometry.get(key)
    if found is not None:
        return found
    mosaic = experiment_mosaic(session)
    depth = session.scalar(sa.select(tm.Experiment.pyramid_depth))
    if depth is None:
        depth = len(pyramid_levels(mosaic.height, mosaic.width))

    def arrays(boxes: dict) -> Boxes:
        items = sorted(boxes.items())
        ids = np.array([i for i, _ in items], np.int64)
        b = np.array([(v.x, -v.bottom, v.right, -v.y) for _, v in items], np.float64)
        b = b.reshape(-1, 4)
        return Boxes(ids, b[:, 0], b[:, 1], b[:, 2], b[:, 3])

    found = ExperimentGeometry(
        depth - 1,
        {"Plate": arrays(mosaic.plates), "Well": arrays(mosaic.wells),
         "Site": arrays(mosaic.sites)},
    )  # fmt: skip
    for old in [k for k in _geometry if k[0] == experiment_id]:
        _geometry.pop(old, None)
    _geometry[key] = found
    return found


def layer_thresholds(layer: tm.SegmentationLayer, max_zoom: int) -> tuple[int, int]:
    """(polygon, centroid) zoom thresholds; unset ones as for segmented objects (§7.5)."""
    polygon = layer.polygon_thresh
    if polygon is None:
        polygon = max(max_zoom - 4, 0)
    centroid = layer.centroid_thresh
    if centroid is None:
        centroid = max(polygon - 2, 0)
    return polygon, centroid


@dataclass
class TileObjects:
    """Objects of a vector tile: ids, geometries (and their GeoJSON), the type's name.

    ``geometries`` are as shown at the tile's zoom level (polygons simplified);
    ``bounds`` are the tile's (minx, miny, maxx, maxy) in map coordinates.
    """

    ids: np.ndarray
    geometries: np.ndarray
    type_name: str
    tpoint: int
    geojson: np.ndarray | None = None
    bounds: tuple[float, float, float, float] | None = None


#: seconds a process keeps what it read about a layer and its objects. Vector
#: tiles are requested by the hundred while a viewer pans; reading and decoding
#: a site's outlines for each of them was most of a tile's cost. Objects a
#: re-run or an upload in another process writes show up after at most this long.
CACHE_SECONDS = 10.0
#: (layer, site) entries kept per process (each a few hundred outlines)
CACHE_ENTRIES = 256


@dataclass
class _LayerInfo:
    type_name: str
    ref_type: str
    tpoint: int
    polygon_thresh: int
    centroid_thresh: int
    geometry: ExperimentGeometry
    expires: float


@dataclass
class _PartitionObjects:
    ids: np.ndarray
    shapes: np.ndarray
    bounds: np.ndarray  # (n, 4): minx, miny, maxx, maxy
    expires: float
    geojson: dict[float | None, np.ndarray]  # GeoJSON of the shapes simplified with a tolerance
    simplified: dict[float | None, np.ndarray] = field(default_factory=dict)  # the shapes


_layers: dict[_LayerKey, _LayerInfo] = {}
_partitions: OrderedDict[tuple, _PartitionObjects] = OrderedDict()
_cache_lock = threading.Lock()
#: cache keys being read again by some thread; the others use the old entry meanwhile
_refreshing: set[tuple] = set()


def forget_objects(experiment_id: int) -> None:
    """Drop this process's cached layers and objects of an experiment (after writing them)."""
    with _cache_lock:
        for key in [k for k in _layers if k[1] == experiment_id]:
            del _layers[key]
        for key in [k for k in _partitions if k[1] == experiment_id]:
            del _partitions[key]
        global _rendered_bytes
        for key in [k for k in _rendered if k[1] == experiment_id]:
            _rendered_bytes -= len(_rendered.pop(key).data)
        for key in [k for k in _signatures if k[1] == experiment_id]:
            del _signatures[key]


def _layer(experiment_id: int, segmentation_layer_id: int) -> _LayerInfo:
    key = _layer_key(experiment_id, segmentation_layer_id)
    found = _layers.get(key)
    if found is not None and found.expires > time.monotonic():
        return found
    with tm.utils.ExperimentSession(experiment_id) as session:
        layer = session.get(tm.SegmentationLayer, segmentation_layer_id)
        if layer is None:
            raise NotFoundError(f"segmentation layer {segmentation_layer_id} does not exist")
        geometry = experiment_geometry(session, experiment_id)
        polygon, centroid = layer_thresholds(layer, geometry.max_zoom)
        found = _LayerInfo(
            type_name=layer.mapobject_type.name,
            ref_type=layer.mapobject_type.ref_type,
            tpoint=layer.tpoint or 0,
            polygon_thresh=polygon,
            centroid_thresh=centroid,
            geometry=geometry,
            expires=time.monotonic() + CACHE_SECONDS,
        )
    _layers[key] = found
    return found


def _partition_objects(
    experiment_id: int, segmentation_layer_id: int, keys: list[int], polygons: bool
) -> list[_PartitionObjects]:
    """The decoded objects of a layer in each partition (cached, see CACHE_SECONDS)."""
    now = time.monotonic()
    found: dict[int, _PartitionObjects] = {}
    refreshing = []
    with _cache_lock:
        for key in keys:
            full_key = (*_layer_key(experiment_id, segmentation_layer_id), key, polygons)
            entry = _partitions.get(full_key)
            if entry is None:
                continue
            _partitions.move_to_end(full_key)
            if entry.expires > now or full_key in _refreshing:
                found[key] = entry  # fresh, or another thread is reading it again
            else:
                _refreshing.add(full_key)
                refreshing.append(full_key)
    missing = [k for k in keys if k not in found]
    try:
        if missing:
            _read_partitions(experiment_id, segmentation_layer_id, missing, polygons, found)
    finally:
        with _cache_lock:
            _refreshing.difference_update(refreshing)
    return [found[k] for k in keys]


def _read_partitions(
    experiment_id: int,
    segmentation_layer_id: int,
    keys: list[int],
    polygons: bool,
    found: dict[int, _PartitionObjects],
) -> None:
    """Read and decode the objects of a layer in some partitions into the cache and `found`."""
    seg = tm.MapobjectSegmentation.__table__
    column = seg.c.geom_polygon if polygons else seg.c.geom_centroid
    rows: dict[int, list] = {k: [] for k in keys}
    with tm.utils.ExperimentSession(experiment_id) as session:
        for start in range(0, len(keys), 500):
            for partition, mapobject_id, centroid, polygon in session.execute(
                sa.select(
                    seg.c.partition_key,
                    seg.c.mapobject_id,
                    sa.type_coerce(seg.c.geom_centroid, sa.LargeBinary),
                    sa.type_coerce(column, sa.LargeBinary),
                ).where(
                    seg.c.segmentation_layer_id == segmentation_layer_id,
                    seg.c.partition_key.in_(keys[start : start + 500]),
                )
            ):
                # objects without an outline are drawn as their centroid
                rows[partition].append((mapobject_id, polygon or centroid))
    expires = time.monotonic() + CACHE_SECONDS
    for key, items in rows.items():
        shapes = shapely.from_wkb(np.array([w for _, w in items], dtype=object))
        ids = np.array([i for i, _ in items], np.int64)
        found[key] = _PartitionObjects(ids, shapes, shapely.bounds(shapes).reshape(-1, 4),
                                       expires, {})  # fmt: skip
    layer_key = _layer_key(experiment_id, segmentation_layer_id)
    with _cache_lock:
        for key in keys:
            _partitions[(*layer_key, key, polygons)] = found[key]
        while len(_partitions) > CACHE_ENTRIES:
            _partitions.popitem(last=False)


def _simplified(entry: _PartitionObjects, tolerance: float | None) -> np.ndarray:
    """A partition's shapes, polygons simplified with `tolerance` (cached per tolerance)."""
    cached = entry.simplified.get(tolerance)
    if cached is None:
        cached = entry.shapes
        if tolerance is not None and len(cached):
            cached = cached.copy()
            is_polygon = shapely.get_type_id(cached) == 3
            cached[is_polygon] = shapely.simplify(cached[is_polygon], tolerance,
                                                  preserve_topology=True)  # fmt: skip
        entry.simplified[tolerance] = cached
    return cached


def _geojson(entry: _PartitionObjects, tolerance: float | None) -> np.ndarray:
    """GeoJSON texts of a partition's shapes, polygons simplified with `tolerance`."""
    cached = entry.geojson.get(tolerance)
    if cached is None:
        shapes = _simplified(entry, tolerance)
        cached = shapely.to_geojson(shapes) if len(shapes) else np.zeros(0, object)
        entry.geojson[tolerance] = cached
    return cached


def tile_objects(
    experiment_id: int,
    segmentation_layer_id: int,
    z: int,
    x: int,
    y: int,
    geojson: bool = True,
) -> TileObjects:
    """The objects of a segmentation layer in a tile, as shown at zoom `z`.

    Polygons simplified with tolerance ``(max_zoom - z)² + 1`` at or above
    the layer's polygon threshold, centroids from its centroid threshold,
    nothing below. The geometries are those of the objects' partitions (sites,
    or wells and plates for static objects) read at most every
    :data:`CACHE_SECONDS` per process. With `geojson` false the objects'
    GeoJSON texts are not made (``geojson`` is None).

    Raises
    ------
    NotFoundError
        Unknown layer.
    InvalidInputError
        A zoom level outside the pyramid or a negative position.
    """
    info = _layer(experiment_id, segmentation_layer_id)
    max_zoom = info.geometry.max_zoom
    check_tile(z, x, y, max_zoom)
    bounds = tile_bounds(z, x, y, max_zoom)
    empty = TileObjects(np.zeros(0, np.int64), np.zeros(0, object), info.type_name, info.tpoint,
                        np.zeros(0, object) if geojson else None, bounds)  # fmt: skip
    if z < info.centroid_thresh and z < info.polygon_thresh:
        return empty
    polygons = z >= info.polygon_thresh
    boxes = info.geometry.boxes.get(info.ref_type, info.geometry.boxes["Site"])
    keys = boxes.intersecting(bounds)
    if not keys:
        return empty
    tolerance = float((max_zoom - z) ** 2 + 1) if polygons else None
    ids, shapes, texts = [], [], []
    for entry in _partition_objects(experiment_id, segmentation_layer_id, keys, polygons):
        near = _in_box(entry, bounds)
        if near.size == 0:
            continue
        ids.append(entry.ids[near])
        shapes.append(_simplified(entry, tolerance)[near])
        if geojson:
            texts.append(_geojson(entry, tolerance)[near])
    if not ids:
        return empty
    return TileObjects(np.concatenate(ids), np.concatenate(shapes), info.type_name, info.tpoint,
                       np.concatenate(texts) if geojson else None, bounds)  # fmt: skip


def _in_box(entry: _PartitionObjects, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """Positions of a partition's shapes that intersect the box `bounds`."""
    minx, miny, maxx, maxy = bounds
    b = entry.bounds
    near = np.flatnonzero(
        (b[:, 0] <= maxx) & (b[:, 2] >= minx) & (b[:, 1] <= maxy) & (b[:, 3] >= miny)
    )
    if near.size == 0:
        return near
    return near[shapely.intersects(entry.shapes[near], shapely.box(*bounds))]


def feature_collection(objects: TileObjects, labels: dict[int, object] | None = None) -> bytes:
    """The GeoJSON FeatureCollection of a tile's objects (ids as decimal strings).

    ``properties.type`` is the object type's name; with `labels`,
    ``properties.label`` is each object's label (null where none).
    """
    if objects.geojson is not None:
        geometries = objects.geojson
    else:
        geometries = shapely.to_geojson(objects.geometries) if len(objects.ids) else []
    type_name = json.dumps(objects.type_name)
    parts = []
    for mapobject_id, geometry in zip(objects.ids.tolist(), geometries, strict=True):
        properties = f'{{"type":{type_name}'
        if labels is not None:
            properties += f',"label":{json.dumps(_jsonable(labels.get(mapobject_id)))}'
        parts.append(
            f'{{"type":"Feature","id":"{mapobject_id}","geometry":{geometry},'
            f'"properties":{properties}}}}}'
        )
    return ('{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}").encode()


#: rendered vector tiles kept per process, at most this many bytes in all
RENDERED_CACHE_BYTES = 64 * 2**20
#: a rendered tile whose layer's objects look unchanged is still rendered anew this often
RENDERED_MAX_AGE = 300.0


@dataclass
class _Rendered:
    data: bytes
    expires: float  # when the layer's signature is read again
    signature: tuple
    rendered: float


_rendered: OrderedDict[tuple, _Rendered] = OrderedDict()
_rendered_bytes = 0
_signatures: dict[_LayerKey, tuple[tuple, float]] = {}


def layer_signature(experiment_id: int, segmentation_layer_id: int) -> tuple:
    """What a layer's objects look like from outside: their number, smallest and largest
    id, the sum of their partition keys, and the layer's zoom thresholds (read at most
    once per CACHE_SECONDS per process). A rendered tile of the same signature is
    served again without being rendered anew: a re-run or an upload in another
    process changes it (and this process's writes call :func:`forget_objects`)."""
    key = _layer_key(experiment_id, segmentation_layer_id)
    now = time.monotonic()
    found = _signatures.get(key)
    if found is not None and found[1] > now:
        return found[0]
    seg = tm.MapobjectSegmentation.__table__
    with tm.utils.ExperimentSession(experiment_id) as session:
        row = session.execute(
            sa.select(
                sa.func.count(), sa.func.min(seg.c.mapobject_id),
                sa.func.max(seg.c.mapobject_id), sa.func.sum(seg.c.partition_key),
            ).where(seg.c.segmentation_layer_id == segmentation_layer_id)
        ).one()  # fmt: skip
        layer = session.get(tm.SegmentationLayer, segmentation_layer_id)
        thresholds = (layer.polygon_thresh, layer.centroid_thresh) if layer else None
    signature = (*row, thresholds)
    _signatures[key] = (signature, now + CACHE_SECONDS)
    return signature


#: units per side of a Mapbox Vector Tile (tile-local coordinates run 0..MVT_EXTENT)
MVT_EXTENT = 4096


def _tile_local(geometries: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """`geometries` in a tile's local coordinates: from its top-left corner, y down,
    :data:`MVT_EXTENT` units per side (the tile's box is `bounds` in map coordinates)."""
    minx, _, maxx, maxy = bounds
    scale = MVT_EXTENT / (maxx - minx)

    def to_tile(coords: np.ndarray) -> np.ndarray:
        local = np.empty_like(coords)
        local[:, 0] = (coords[:, 0] - minx) * scale
        local[:, 1] = (maxy - coords[:, 1]) * scale  # map y is -row: rows grow downwards
        return local

    return shapely.transform(geometries, to_tile)


def encode_mvt(objects: TileObjects) -> bytes:
    """The Mapbox Vector Tile of a tile's objects.

    One layer, named by the object type, of extent :data:`MVT_EXTENT`; each
    feature's id is its object's id, without properties. Coordinates are
    tile-local (see :func:`_tile_local`), rounded to whole units by the
    encoder, which also orients rings as the specification wants (exterior
    rings clockwise on screen).
    """
    import mapbox_vector_tile

    if objects.bounds is None:
        raise ValueError("the objects' tile bounds are needed to encode a vector tile")
    local = _tile_local(objects.geometries, objects.bounds)
    features = [
        {"geometry": geometry, "id": mapobject_id}
        for mapobject_id, geometry in zip(objects.ids.tolist(), local, strict=True)
    ]
    return mapbox_vector_tile.encode(
        {"name": objects.type_name, "features": features},
        default_options={"extents": MVT_EXTENT, "y_coord_down": True},
    )


def _render_geojson(
    experiment_id: int, segmentation_layer_id: int, z: int, x: int, y: int
) -> bytes:
    return feature_collection(tile_objects(experiment_id, segmentation_layer_id, z, x, y))


def _render_mvt(experiment_id: int, segmentation_layer_id: int, z: int, x: int, y: int) -> bytes:
    return encode_mvt(tile_objects(experiment_id, segmentation_layer_id, z, x, y, False))


#: how each encoding of vector tiles is rendered
_RENDERERS = {"geojson": _render_geojson, "mvt": _render_mvt}


def vector_tile(experiment_id: int, segmentation_layer_id: int, z: int, x: int, y: int) -> bytes:
    """The GeoJSON of a vector tile (see :func:`tile_objects`), cached (:func:`cached_tile`)."""
    return cached_tile("geojson", experiment_id, segmentation_layer_id, z, x, y)


def mvt_tile(experiment_id: int, segmentation_layer_id: int, z: int, x: int, y: int) -> bytes:
    """The Mapbox Vector Tile of a vector tile (:func:`encode_mvt`), cached (:func:`cached_tile`).

    Its tile-local coordinates place objects as clients of the standard place
    them on a raster tile (z, x, y) of the pyramid: from its top-left corner,
    y down.
    """
    return cached_tile("mvt", experiment_id, segmentation_layer_id, z, x, y)


def cached_tile(
    encoding: str, experiment_id: int, segmentation_layer_id: int, z: int, x: int, y: int
) -> bytes:
    """A vector tile in `encoding` (``geojson`` or ``mvt``), rendered at most once per period.

    The tiles of low zoom levels hold the outlines of whole plates; a viewer
    asks for them again on every pan. A rendered tile is served for
    CACHE_SECONDS, then again as long as its layer's :func:`layer_signature`
    is unchanged, for at most RENDERED_MAX_AGE; the cache holds at most
    RENDERED_CACHE_BYTES of tiles per process.
    """
    key = (*_layer_key(experiment_id, segmentation_layer_id), encoding, z, x, y)
    now = time.monotonic()
    with _cache_lock:
        found = _rendered.get(key)
        if found is not None:
            _rendered.move_to_end(key)
            if found.expires > now or key in _refreshing:
                return found.data  # fresh, or another thread renders it again
        _refreshing.add(key)
    try:
        signature = layer_signature(experiment_id, segmentation_layer_id)
        if (
            found is not None
            and found.signature == signature
            and now - found.rendered < RENDERED_MAX_AGE
        ):
            found.expires = now + CACHE_SECONDS  # the same objects: the same tile
            return found.data
        data = _RENDERERS[encoding](experiment_id, segmentation_layer_id, z, x, y)
    finally:
        with _cache_lock:
            _refreshing.discard(key)
    _keep_rendered(key, _Rendered(data, now + CACHE_SECONDS, signature, now))
    return data


def _keep_rendered(key: tuple, rendered: _Rendered) -> None:
    """Put a rendered tile into the cache, dropping the least recently used beyond its size."""
    global _rendered_bytes
    with _cache_lock:
        old = _rendered.pop(key, None)
        if old is not None:
            _rendered_bytes -= len(old.data)
        if len(rendered.data) <= RENDERED_CACHE_BYTES // 8:
            _rendered[key] = rendered
            _rendered_bytes += len(rendered.data)
        while _rendered_bytes > RENDERED_CACHE_BYTES:
            _, dropped = _rendered.popitem(last=False)
            _rendered_bytes -= len(dropped.data)


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def tile_labels(
    experiment_id: int, mapobject_type_name: str, result_name: str, objects: TileObjects
) -> dict[int, object]:
    """Label values of a tool result for a tile's objects (NaN where an object has none).

    A heat map's labels are the values of its feature (``attributes.feature_id``);
    other results' labels are their :class:`~tmlib.models.LabelValues`; both
    read as by :func:`tmlib.values.object_values`.

    Raises
    ------
    NotFoundError
        When the object type has no tool result of that name.
    """
    from tmlib.values import object_values, result_source

    with tm.utils.ExperimentSession(experiment_id) as session:
        result = session.scalar(
            sa.select(tm.ToolResult)
            .join(tm.MapobjectType, tm.ToolResult.mapobject_type_id == tm.MapobjectType.id)
            .where(tm.ToolResult.name == result_name, tm.MapobjectType.name == mapobject_type_name)
        )
        if result is None:
            raise NotFoundError(
                f"objects {mapobject_type_name} have no tool result {result_name!r}"
            )
        source = result_source(session, result)
        ids, values = object_values(session, source, objects.tpoint, objects.ids.tolist())
    return dict(zip(ids.tolist(), values.tolist(), strict=True))
