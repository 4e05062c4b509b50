"""illuminati: the whole experiment as zoomable image pyramids (reference §5.6).

One :class:`~tmlib.models.ChannelLayer` per channel, time point and z-plane.
The mosaic (:mod:`tmlib.mosaic`) is cut into square *blocks* of tiles; each
run job renders one block of one layer (images corrected, aligned, clipped
and mapped to 8 bit) and writes the block's tiles of every level down to a
single tile into its own container, a *shard* (:mod:`tmlib.tiles`). The
collect job builds the levels above the blocks and makes each layer of its
shards without copying them (:func:`tmlib.tiles.write_layer`: the shards are
hard-linked next to a small index holding the top levels, and readers find a
tile's block by arithmetic), and records the layers and the static objects
``Plates``, ``Wells`` and ``Sites`` with their outlines. Collect therefore
writes only the top levels (one tile per block and a third more) and never
copies the pyramid's bytes: its cost grows with the number of blocks, not of
tiles.

Blocks replace the original's batches of images followed by one run phase
per pyramid level: a block job reads the images it covers once and halves
its canvas in memory, so the higher levels need neither extra jobs nor
re-decoding of JPEG tiles, and no job waits for another.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tmlib.cli.base import handle_errors
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, job_slots, register_step

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tmlib.mosaic import Box, Mosaic

cv2 = lazy_import("cv2")
np = lazy_import("numpy")
shapely = lazy_import("shapely")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")
mosaics = lazy_import("tmlib.mosaic")
pyramid = lazy_import("tmlib.pyramid")
storage = lazy_import("tmlib.storage")

#: largest block side in tiles: a block's canvas is (side * 256)² bytes (64 MB at 32)
MAX_BLOCK_TILES = 32
#: names and reference types of the static object types made in collect
STATIC_TYPES = (("Plates", "Plate"), ("Wells", "Well"), ("Sites", "Site"))


def block_tiles(batch_size: int, site_height: int, site_width: int) -> int:
    """Side of a block in tiles: a power of two covering about `batch_size` sites."""
    side = math.sqrt(max(batch_size, 1) * site_height * site_width) / pyramid.TILE_SIZE
    return int(min(MAX_BLOCK_TILES, 2 ** max(0, math.floor(math.log2(max(side, 1))))))


def polygon_thresholds(max_zoom: int) -> dict[str, tuple[int, int]]:
    """(polygon, centroid) zoom thresholds of the static object types (reference §7.5)."""
    return {
        "Plates": (0, 0),
        "Wells": (max(max_zoom - 11, 0), 0),
        "Sites": (max(max_zoom - 8, 0), 0),
    }


@register_step
class Illuminati(Step):
    name = "illuminati"
    fullname = "Pyramid image builder"
    description = "Builds zoomable image pyramids of every channel for the viewer."
    requires = ("imextract",)
    has_collect = True
    auto_batch = (4, 100)
    batch_args = (
        Argument("batch_size", int, None, "About this many images per run job (the job's "
                 "block of the mosaic covers that area)" + AUTO_BATCH_HELP, short="-b"),
        Argument("align", bool, False, "Shift and crop images by the align step's shifts.",
                 short="-a"),
        Argument("illumcorr", bool, False, "Correct illumination with corilla's statistics.",
                 short="-i"),
        Argument("clip", bool, False, "Clip intensities to a window (else the whole bit depth).",
                 short="-c"),
        Argument("clip_value", int, None, "Upper end of the window (default: the percentile "
                 "--clip-percent of corilla's statistics)."),
        Argument("clip_percent", float, 99.9, "Percentile for the upper end of the window."),
        Argument("illumcorr_exceptions", str, None, "Comma-separated channel names not to "
                 "correct."),
    )  # fmt: skip

    @property
    def shards_location(self) -> Path:
        return self.step_location / "shards"

    def shard_path(self, layer_index: int, block: tuple[int, int]) -> Path:
        return self.shards_location / f"layer_{layer_index}" / f"block_{block[0]}_{block[1]}.tiles"

    # ------------------------------------------------------------------ init

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        from tmlib.mosaic import experiment_mosaic

        if args["batch_size"] is not None and args["batch_size"] < 1:
            raise InvalidInputError("batch_size must be at least 1")
        if not 0 < args["clip_percent"] <= 100:
            raise InvalidInputError(f"clip_percent must be in (0, 100], got {args['clip_percent']}")
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            files = session.scalars(
                sa.select(tm.ChannelImageFile).order_by(tm.ChannelImageFile.id)
            ).all()
            if not files:
                raise InvalidInputError(
                    f"experiment {self.experiment_id} has no image planes; run the "
                    "image_conversion stage first"
                )
            sites = {s.id: s for s in session.scalars(sa.select(tm.Site))}
            files = [f for f in files if not sites[f.site_id].omitted]
            _check_images(files, sites)
            layers = self._layers(session, files, args)
            shifts = _shifts(session) if args["align"] else {}
            if args["align"] and not shifts:
                raise InvalidInputError(
                    f"experiment {self.experiment_id} has no site shifts: run the align step "
                    "first, or build the pyramids without --align"
                )
            layout = experiment_mosaic(session, aligned=args["align"])
            site = next(iter(sites.values()))
            side = block_tiles(self.batch_size(args, len(files)), site.height, site.width)
            levels = mosaics.pyramid_levels(layout.height, layout.width, pyramid.TILE_SIZE)

            by_layer: dict[tuple[int, int, int], list[tm.ChannelImageFile]] = defaultdict(list)
            for f in files:
                by_layer[(f.channel_id, f.tpoint, f.zplane)].append(f)
            while True:
                batches = self._blocks(layers, by_layer, layout, sites, shifts, args, side)
                # automatic: smaller blocks until every job slot has one (while there are images)
                if args["batch_size"] is not None or side == 1:
                    break
                if len(batches) >= min(job_slots(), len(files)):
                    break
                side //= 2
        geometry = {"block_tiles": side, "levels": [list(lv) for lv in levels]}
        return [{**batch, **geometry} for batch in batches]

    def _blocks(
        self,
        layers: list[dict[str, Any]],
        by_layer: dict[tuple[int, int, int], list[tm.ChannelImageFile]],
        layout: Any,
        sites: dict[int, tm.Site],
        shifts: dict[tuple[int, int], tuple[int, int]],
        args: dict[str, Any],
        side: int,
    ) -> list[dict[str, Any]]:
        """One batch per block of `side` tiles of each layer that holds images."""
        block_px = side * pyramid.TILE_SIZE
        batches = []
        for index, layer in enumerate(layers):
            blocks: dict[tuple[int, int], list[list[int]]] = defaultdict(list)
            for f in by_layer[(layer["channel_id"], layer["tpoint"], layer["zplane"])]:
                box = layout.sites[f.site_id]
                s = sites[f.site_id]
                shift = shifts.get((f.site_id, f.cycle_id), (0, 0)) if args["align"] else None
                image = [f.id, box.y, box.x, box.height, box.width]
                if shift is not None:
                    image += [*shift, s.top_residue, s.bottom_residue, s.left_residue,
                              s.right_residue]  # fmt: skip
                for by in range(box.y // block_px, (box.bottom - 1) // block_px + 1):
                    for bx in range(box.x // block_px, (box.right - 1) // block_px + 1):
                        blocks[(by, bx)].append(image)
            for block, images in sorted(blocks.items()):
                batches.append({"layer": index, **layer, "block": list(block), "images": images})
        return batches

    def create_collect_batch(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"align": args["align"]}

    def _layers(
        self, session: Session, files: list[tm.ChannelImageFile], args: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """One entry per (channel, tpoint, zplane) with its intensity window; validates."""
        channels = {c.id: c for c in session.scalars(sa.select(tm.Channel))}
        exceptions = {n.strip() for n in (args["illumcorr_exceptions"] or "").split(",") if n}
        unknown = exceptions - {c.name for c in channels.values()}
        if unknown:
            raise InvalidInputError(
                f"illumcorr_exceptions names unknown channel(s): {', '.join(sorted(unknown))}"
            )
        stats = {}
        for channel in channels.values():
            corrected = args["illumcorr"] and channel.name not in exceptions
            needs_stats = corrected or (args["clip"] and args["clip_value"] is None)
            if needs_stats:
                stats_file = channel.illumstats_file
                if stats_file is None or not Path(stats_file.location).is_file():
                    raise InvalidInputError(
                        f"channel {channel.name} has no illumination statistics: run corilla "
                        "first (or give --clip-value and leave out --illumcorr)"
                    )
                stats[channel.id] = stats_file.get()
        layers = []
        keys = sorted({(f.channel_id, f.tpoint, f.zplane) for f in files})
        for channel_id, tpoint, zplane in keys:
            channel = channels[channel_id]
            percentiles = stats.get(channel_id)
            try:
                window = pyramid.intensity_window(
                    channel.bit_depth,
                    args["clip"],
                    args["clip_value"],
                    percentiles.closest_percentile(args["clip_percent"]) if percentiles else None,
                    percentiles.closest_percentile(0.001) if percentiles else None,
                )
            except ValueError as err:
                raise InvalidInputError(f"channel {channel.name}: {err}") from None
            layers.append(
                {
                    "channel_id": channel_id,
                    "tpoint": tpoint,
                    "zplane": zplane,
                    "bit_depth": channel.bit_depth,
                    "window": list(window),
                    "illumcorr": bool(args["illumcorr"] and channel.name not in exceptions),
                }
            )
        return layers

    # ------------------------------------------------------------------- run

    def run_job(self, batch: dict[str, Any]) -> None:
        from tmlib.alignment import shift_and_crop
        from tmlib.illumination import Correction
        from tmlib.mosaic import Box
        from tmlib.tiles import TileWriter

        cv2.setNumThreads(1)  # one job per core: threads would only compete
        side = batch["block_tiles"]
        levels = batch["levels"]
        grids = [mosaics.tile_grid(h, w, pyramid.TILE_SIZE) for h, w in levels]
        base = len(levels) - 1
        by, bx = batch["block"]
        origin = (by * side * pyramid.TILE_SIZE, bx * side * pyramid.TILE_SIZE)
        canvas = np.zeros((side * pyramid.TILE_SIZE,) * 2, np.uint8)
        lower, upper = batch["window"]
        # the database says where the planes are; pixels are read, corrected and
        # tiled without a connection
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            stats = _stats_file(session, batch["channel_id"]) if batch["illumcorr"] else None
            ids = [image[0] for image in batch["images"]]
            locations = {
                f.id: f.location
                for f in session.scalars(
                    sa.select(tm.ChannelImageFile).where(tm.ChannelImageFile.id.in_(ids))
                )
            }
        correction = None if stats is None else Correction.from_stats(stats.get().smoothed())
        for image in batch["images"]:
            file_id, y, x, height, width = image[:5]
            place = pyramid.overlap(origin, canvas.shape, Box(y, x, height, width))
            if place is None:
                continue
            (canvas_rows, canvas_columns), (rows, columns) = place
            location = locations[file_id]
            aligned = len(image) > 5  # + shift y, x and residues top, bottom, left, right
            if correction is None:
                # read and map only what lands on this block; an aligned image
                # is the window of the plane at (top + shift y, left + shift x)
                # (see tmlib.alignment.shift_and_crop)
                dy, dx = (image[5] + image[7], image[6] + image[9]) if aligned else (0, 0)
                pixels = storage.read_plane(location, slice(rows.start + dy, rows.stop + dy))
                pixels = pixels[:, columns.start + dx : columns.stop + dx]
            else:  # the correction needs the whole plane
                pixels = correction(storage.read_plane(location))
                if aligned:
                    pixels = shift_and_crop(pixels, *image[5:])
                pixels = pixels[rows, columns]
            canvas[canvas_rows, canvas_columns] = pyramid.to_display(pixels, lower, upper)
        stop = max(base - int(math.log2(side)), 0)
        shard = self.shard_path(batch["layer"], (by, bx))
        with TileWriter(shard) as writer:
            for level, row, column, tile in pyramid.pyramid_tiles(
                canvas, base, by * side, bx * side, grids, stop
            ):
                writer.put(level, row, column, pyramid.encode_tile(tile))
                if level == stop and stop > 0:
                    # the levels above the blocks are made from these pixels, not
                    # from decoded JPEG, so tiles do not depend on the block size
                    _save_array(shard.with_suffix(".top.npy"), tile)

    # --------------------------------------------------------------- collect

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        from tmlib.mosaic import experiment_mosaic
        from tmlib.tiles import remove_layer, top_block_level, write_layer

        runs = {job_id: self.read_batch("run", job_id) for job_id in self.run_job_ids()}
        layers = {run["layer"]: run for run in runs.values()}
        shards = self._shards(runs)
        # every run batch carries the pyramid's geometry
        first = next(iter(runs.values()))
        side = first["block_tiles"]
        levels = [tuple(lv) for lv in first["levels"]]
        grids = [mosaics.tile_grid(h, w, pyramid.TILE_SIZE) for h, w in levels]
        top = top_block_level(len(levels), side)
        written: list[str] = []
        try:
            with tm.utils.ExperimentSession(self.experiment_id) as session:
                experiment = session.scalars(sa.select(tm.Experiment)).one()
                for index in sorted(layers):
                    run = layers[index]
                    layer = tm.ChannelLayer(
                        channel_id=run["channel_id"],
                        tpoint=run["tpoint"],
                        zplane=run["zplane"],
                        min_intensity=run["window"][0],
                        max_intensity=run["window"][1],
                    )
                    session.add(layer)
                    session.flush()
                    blocks = shards[index]
                    above = _top_levels(sorted(blocks.values()), top, grids) if top > 0 else []
                    # the shards become the layer's blocks (linked, not copied)
                    try:
                        write_layer(layer.location, blocks, side, len(levels), above)
                    except ValueError as err:  # a shard that is no tile container
                        bad = [j for j, r in runs.items() if str(self._shard_of(r)) in str(err)]
                        again = f"run job {bad[0]} again" if bad else "run the step again"
                        raise InvalidInputError(
                            f"{err}: {again} ('illuminati {self.experiment_id} run"
                            f"{f' -j {bad[0]}' if bad else ''}') or submit again"
                        ) from None
                    written.append(layer.location)
                experiment.pyramid_height, experiment.pyramid_width = levels[-1]
                experiment.pyramid_depth = len(levels)
                layout = experiment_mosaic(session, aligned=batch["align"])
                _add_static_objects(session, layout, max_zoom=len(levels) - 1)
        except BaseException:
            for location in written:  # their rows were rolled back: no half result stays
                remove_layer(location)
            raise
        shutil.rmtree(self.shards_location, ignore_errors=True)

    def _shard_of(self, run: dict[str, Any]) -> Path:
        return self.shard_path(run["layer"], (run["block"][0], run["block"][1]))

    def _shards(self, runs: dict[int, dict[str, Any]]) -> dict[int, dict[tuple[int, int], Path]]:
        """The shard of every run job, by layer and block.

        Raises
        ------
        NotFoundError
            Naming the first run job that left none.
        """
        shards: dict[int, dict[tuple[int, int], Path]] = defaultdict(dict)
        for job_id, run in sorted(runs.items()):
            path = self._shard_of(run)
            if not path.is_file():
                raise NotFoundError(
                    f"run job {job_id} of illuminati left no tiles ({path}): run it "
                    f"('illuminati {self.experiment_id} run -j {job_id}') or submit again"
                )
            shards[run["layer"]][(run["block"][0], run["block"][1])] = path
        return shards

    # --------------------------------------------------------------- cleanup

    def delete_previous_job_output(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            for channel in session.scalars(sa.select(tm.Channel)):
                shutil.rmtree(channel.layers_location, ignore_errors=True)
            session.execute(sa.delete(tm.ChannelLayer))
            names = [name for name, _ in STATIC_TYPES]
            # mapobjects and their outlines go with their type (ON DELETE CASCADE);
            # segmented objects of jterator are left alone
            session.execute(sa.delete(tm.MapobjectType).where(tm.MapobjectType.name.in_(names)))
            session.execute(
                sa.update(tm.Experiment).values(
                    pyramid_height=None, pyramid_width=None, pyramid_depth=None
                )
            )
        shutil.rmtree(self.shards_location, ignore_errors=True)

    def output_locations(self) -> list[Path]:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            layers = [Path(c.layers_location) for c in session.scalars(sa.select(tm.Channel))]
        return [self.shards_location, *layers]


# ---------------------------------------------------------------------- helpers


def _check_images(files: list[tm.ChannelImageFile], sites: dict[int, tm.Site]) -> None:
    """Every site has the same number of planes, all the same size, all on disk."""
    per_site = Counter({site_id: 0 for site_id, site in sites.items() if not site.omitted})
    per_site.update(f.site_id for f in files)
    counts = Counter(per_site.values())
    if len(counts) > 1:
        usual = counts.most_common(1)[0][0]
        odd = next(site for site, n in per_site.items() if n != usual)
        well = sites[odd].well
        raise InvalidInputError(
            f"sites have differing numbers of image planes: site ({sites[odd].y}, "
            f"{sites[odd].x}) of well {well.name} has {per_site[odd]}, most have {usual}"
        )
    sizes = {(sites[s].height, sites[s].width) for s in per_site}
    if len(sizes) > 1:
        raise InvalidInputError(f"sites differ in size: {sorted(sizes)}")
    for f in files:
        if not Path(f.location).is_file():
            raise InvalidInputError(
                f"image plane {f.id} (channel {f.channel.name}, site {f.site_id}) is missing: "
                f"{f.location}; run imextract again"
            )


def _shifts(session: Session) -> dict[tuple[int, int], tuple[int, int]]:
    return {(s.site_id, s.cycle_id): (s.y, s.x) for s in session.scalars(sa.select(tm.SiteShift))}


def _stats_file(session: Session, channel_id: int) -> tm.IllumstatsFile:
    """A channel's illumination statistics, readable after `session` closed."""
    stats_file = session.get(tm.Channel, channel_id).illumstats_file
    stats_file.location  # noqa: B018 - loads what the path needs while the session is open
    return stats_file


def _save_array(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        np.save(f, array)
    tmp.replace(path)


def _top_levels(
    shards: list[Path], level: int, grids: list[tuple[int, int]]
) -> list[tuple[int, int, int, bytes]]:
    """Tiles of the levels above `level`, the level where each block is one tile.

    Built from the blocks' top tiles as rendered (``block_Y_X.top.npy``; a
    block without one is black there).
    """
    size = pyramid.TILE_SIZE
    canvas = np.zeros((grids[level][0] * size, grids[level][1] * size), np.uint8)
    for shard in shards:
        top = shard.with_suffix(".top.npy")
        if top.is_file():
            row, column = (int(v) for v in shard.stem.split("_")[1:3])
            y, x = row * size, column * size
            canvas[y : y + size, x : x + size] = np.load(top)
    return [
        (lv, row, column, pyramid.encode_tile(tile))
        for lv, row, column, tile in pyramid.pyramid_tiles(
            pyramid.halve(canvas), level - 1, 0, 0, grids
        )
    ]


def outline(box: Box) -> tuple[Any, Any]:
    """Polygon (inset by 1 px) and centroid of a box in map coordinates (x, -row)."""
    x0, x1 = box.x + 1, box.right - 1
    y0, y1 = -(box.y + 1), -(box.bottom - 1)
    polygon = shapely.box(x0, y1, x1, y0)
    return polygon, shapely.Point((x0 + x1) / 2, (y0 + y1) / 2)


def _add_static_objects(session: Session, layout: Mosaic, max_zoom: int) -> None:
    thresholds = polygon_thresholds(max_zoom)
    boxes = {"Plates": layout.plates, "Wells": layout.wells, "Sites": layout.sites}
    experiment_id = session.scalar(sa.select(tm.Experiment.id))
    for name, ref_type in STATIC_TYPES:
        kind = tm.MapobjectType(name=name, ref_type=ref_type, experiment_id=experiment_id)
        polygon_thresh, centroid_thresh = thresholds[name]
        layer = tm.SegmentationLayer(
            mapobject_type=kind, polygon_thresh=polygon_thresh, centroid_thresh=centroid_thresh
        )
        session.add_all([kind, layer])
        session.flush()
        items = sorted(boxes[name].items())
        ids = session.scalars(
            sa.insert(tm.Mapobject).returning(tm.Mapobject.id, sort_by_parameter_order=True),
            [
                {"partition_key": ref_id, "mapobject_type_id": kind.id, "ref_id": ref_id}
                for ref_id, _ in items
            ],
        ).all()
        rows = []
        for mapobject_id, (ref_id, box) in zip(ids, items, strict=True):
            polygon, centroid = outline(box)
            rows.append(
                {
                    "mapobject_id": mapobject_id,
                    "segmentation_layer_id": layer.id,
                    "partition_key": ref_id,
                    "geom_polygon": polygon,
                    "geom_centroid": centroid,
                }
            )
        if rows:
            session.execute(sa.insert(tm.MapobjectSegmentation), rows)


# ------------------------------------------------------------------ export


def find_layer(
    session: Session, channel_name: str, tpoint: int = 0, zplane: int = 0
) -> tm.ChannelLayer:
    """The pyramid layer of a channel.

    Raises
    ------
    NotFoundError
        When the channel or its layer does not exist.
    """
    channel = session.scalar(sa.select(tm.Channel).where(tm.Channel.name == channel_name))
    if channel is None:
        known = ", ".join(session.scalars(sa.select(tm.Channel.name).order_by(tm.Channel.name)))
        raise NotFoundError(f"no channel {channel_name!r}; channels: {known or 'none'}")
    layer = session.scalar(
        sa.select(tm.ChannelLayer).where(
            tm.ChannelLayer.channel_id == channel.id,
            tm.ChannelLayer.tpoint == tpoint,
            tm.ChannelLayer.zplane == zplane,
        )
    )
    if layer is None:
        raise NotFoundError(
            f"channel {channel_name!r} has no pyramid at tpoint {tpoint}, zplane {zplane}: "
            "run illuminati first"
        )
    return layer


def export_level(
    experiment_id: int,
    channel_name: str,
    level: int | None = None,
    tpoint: int = 0,
    zplane: int = 0,
    max_side: int = 2048,
) -> np.ndarray:
    """One level of a channel's pyramid as an 8-bit image.

    Parameters
    ----------
    level : int, optional
        0 is the most zoomed out; default: the largest level whose sides are
        at most `max_side` pixels.

    Returns
    -------
    ndarray, shape (height, width), dtype uint8

    Raises
    ------
    NotFoundError, InvalidInputError
    """
    from tmlib.tiles import TileReader

    with tm.utils.ExperimentSession(experiment_id) as session:
        layer = find_layer(session, channel_name, tpoint, zplane)
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        levels = mosaics.pyramid_levels(experiment.pyramid_height, experiment.pyramid_width)
        location = layer.location
    if level is None:
        level = max(i for i, (h, w) in enumerate(levels) if max(h, w) <= max_side or i == 0)
    if not 0 <= level < len(levels):
        raise InvalidInputError(f"level must be between 0 and {len(levels) - 1}, got {level}")
    grid = mosaics.tile_grid(*levels[level], pyramid.TILE_SIZE)
    with TileReader(location) as reader:
        return pyramid.assemble(
            lambda row, column: reader.get_tile(level, row, column), grid, levels[level]
        )


@click.command(help="Write one level of a channel's pyramid as an image (PNG, TIFF or JPEG).")
@click.option("--channel", "channel_name", required=True, help="Channel name.")
@click.option("--level", type=int, help="Pyramid level, 0 = most zoomed out "
              "[default: the largest level at most 2048 px wide and high].")  # fmt: skip
@click.option("--tpoint", type=int, default=0, show_default=True)
@click.option("--zplane", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Image file to write; its suffix picks the format.")  # fmt: skip
@handle_errors
def export(channel_name: str, level: int | None, tpoint: int, zplane: int, output: Path) -> None:
    experiment_id = click.get_current_context().obj["experiment_id"]
    image = export_level(experiment_id, channel_name, level, tpoint, zplane)
    tmp = output.with_name(f".{output.name}.tmp{output.suffix}")
    if not cv2.imwrite(str(tmp), image):
        tmp.unlink(missing_ok=True)
        raise InvalidInputError(f"cannot write an image to {output} (unknown suffix?)")
    tmp.replace(output)
    click.echo(f"wrote {output} ({image.shape[1]}x{image.shape[0]} px)")


main = step_program(Illuminati, extra_commands=(export,))
