"""corilla: illumination statistics of every channel.

For each channel (in our model every multiplexing cycle has channels of its
own) the statistics of all its images are computed: per pixel the mean and
standard deviation of log10 intensities, and intensity percentiles of all
pixels pooled. They are stored as one :class:`tmlib.models.IllumstatsFile` per
channel, which consumers (illuminati, jterator, align) read smoothed to
correct images (:class:`tmlib.illumination.Correction`).

Jobs
----
init
    Validates (extracted images exist, one shape and bit depth per channel)
    and cuts each channel's images into batches of ``batch_size``, but into at
    most :data:`MAX_PARTS` batches per channel (larger ones where needed), so
    that collect has a bounded number of partials to merge whatever the plate
    and the cluster. A channel of more than :data:`MAX_IMAGES` images uses a
    fixed pseudo-random subset of that many (the same at every init), as the
    original did.
run
    Adds up the statistics of its batch (:class:`IlluminationStats`) and
    writes them, atomically, to ``workflow/corilla/partial/channel_<id>/``.
collect
    Merges the partials of each channel (at most :data:`MAX_PARTS`: a 384-well
    plate costs collect what a plate of ``MAX_PARTS`` batches does, about one
    HDF5 read of two uint64 images per partial) and writes its IllumstatsFile
    (row and file together). The sums are integers, so the result is the
    same, bit for bit, for every ``batch_size`` and merge order.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, chunks, register_step

if TYPE_CHECKING:
    from tmlib.illumination import IlluminationStats

np = lazy_import("numpy")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")
storage = lazy_import("tmlib.storage")

logger = logging.getLogger(__name__)

#: at most this many images of a channel are used (a fixed random subset of more)
MAX_IMAGES = 20_000
#: below this many images per channel the statistics are noisy: warn
FEW_IMAGES = 100
#: seed of the subset of a channel with more than MAX_IMAGES images
SUBSET_SEED = 20_000
#: at most this many run jobs (partial statistics) per channel: collect reads and adds
#: every partial (two uint64 images, 88 MB at 2160x2560), so this bounds its cost; a
#: channel's images are split over more jobs only up to this many (13,824 images of a
#: 384-well plate: 432 per job, well under a minute)
MAX_PARTS = 32


def _dtype_of(bit_depth: int) -> np.dtype:
    return np.dtype(np.uint8 if bit_depth <= 8 else np.uint16)


@register_step
class Corilla(Step):
    """Illumination statistics of every channel (see the module docstring)."""

    name = "corilla"
    fullname = "Calculation of illumination statistics"
    description = (
        "Per channel: per-pixel mean and std of log10 intensities over all sites, "
        "and intensity percentiles."
    )
    requires = ("imextract",)
    has_collect = True
    auto_batch = (20, 500)  # adding an image to the statistics takes milliseconds
    batch_args = (
        Argument(
            "batch_size",
            int,
            None,
            "Images per run job; a channel's images are split over several jobs "
            f"(the result does not depend on it); at most {MAX_PARTS} jobs per channel, larger "
            "batches where needed" + AUTO_BATCH_HELP,
            short="-b",
        ),
    )

    @property
    def partial_location(self) -> Path:
        """Where run jobs leave their partial statistics for collect."""
        return self.step_location / "partial"

    def partial_file(self, channel_id: int, part: int) -> Path:
        return self.partial_location / f"channel_{channel_id}" / f"part_{part:05d}.h5"

    # ------------------------------------------------------------------- init

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        if args["batch_size"] is not None and args["batch_size"] < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {args['batch_size']}")
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            channels = session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id)).all()
            rows = session.execute(
                sa.select(tm.ChannelImageFile, tm.Site.height, tm.Site.width)
                .join(tm.Site, tm.ChannelImageFile.site_id == tm.Site.id)
                .order_by(tm.ChannelImageFile.channel_id, tm.ChannelImageFile.id)
            ).all()
            if not rows:
                raise InvalidInputError(
                    f"experiment {self.experiment_id} has no image planes: run metaconfig and "
                    "imextract before corilla"
                )
            by_channel: dict[int, list[tuple[tm.ChannelImageFile, int, int]]] = defaultdict(list)
            for plane, height, width in rows:
                by_channel[plane.channel_id].append((plane, height, width))
            size = self.batch_size(
                args, sum(min(len(by_channel[c.id]), MAX_IMAGES) for c in channels)
            )
            batches = []
            for channel in channels:
                planes = by_channel.get(channel.id, [])
                if not planes:
                    raise InvalidInputError(
                        f"channel {channel.name!r} of experiment {self.experiment_id} has no "
                        "image planes: run metaconfig again"
                    )
                shape = _one_shape(channel.name, planes)
                used = _subset([p[0] for p in planes])
                _check_extracted(channel.name, used)
                # never more than MAX_PARTS partials of a channel for collect to merge
                parts = chunks([p.id for p in used], max(size, -(-len(used) // MAX_PARTS)))
                batches.extend(
                    {
                        "channel_id": channel.id,
                        "channel_name": channel.name,
                        "part": part,
                        "n_parts": len(parts),
                        "shape": list(shape),
                        "dtype": _dtype_of(channel.bit_depth).name,
                        "channel_image_file_ids": ids_of_part,
                    }
                    for part, ids_of_part in enumerate(parts, start=1)
                )
            counts = [(channel.name, len(by_channel[channel.id])) for channel in channels]
        # only now that all is valid: say what is unusual
        for name, n in counts:
            if n < FEW_IMAGES:
                logger.warning(
                    "channel %r has only %d images: illumination statistics of fewer than %d "
                    "images are noisy", name, n, FEW_IMAGES,
                )  # fmt: skip
            elif n > MAX_IMAGES:
                logger.info("channel %r: using %d of its %d images", name, MAX_IMAGES, n)
        return batches

    # -------------------------------------------------------------------- run

    def run_job(self, batch: dict[str, Any]) -> None:
        ids = batch["channel_image_file_ids"]
        shape = tuple(batch["shape"])
        from tmlib.illumination import IlluminationStats

        dtype = np.dtype(batch["dtype"])
        stats = IlluminationStats.empty(shape, dtype)
        # the database only says where the planes are: no connection is held
        # while their pixels are read
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            planes = [
                (p.id, p.location)
                for p in session.scalars(
                    sa.select(tm.ChannelImageFile)
                    .where(tm.ChannelImageFile.id.in_(ids))
                    .order_by(tm.ChannelImageFile.id)
                )
            ]
        if len(planes) != len(ids):
            gone = sorted(set(ids) - {plane_id for plane_id, _ in planes})
            raise InvalidInputError(
                f"image planes {gone[:5]} of channel {batch['channel_name']!r} no longer "
                f"exist: run 'corilla {self.experiment_id} init' again"
            )
        for plane_id, location in planes:
            try:
                image = storage.read_plane(location)
            except FileNotFoundError:
                raise InvalidInputError(
                    f"image plane {plane_id} has no pixels ({location}): run imextract"
                ) from None
            if image.shape != shape or image.dtype != dtype:
                raise InvalidInputError(
                    f"image plane {plane_id} ({location}) is {image.dtype} of shape "
                    f"{image.shape}, but channel {batch['channel_name']!r} has {dtype} "
                    f"images of shape {shape}: run metaconfig and imextract again"
                )
            stats.add(image)
        stats.save(self.partial_file(batch["channel_id"], batch["part"]))

    # ---------------------------------------------------------------- collect

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for job_id in self.run_job_ids():
            run_batch = self.read_batch("run", job_id)
            parts[run_batch["channel_id"]].append({"job": job_id, **run_batch})
        for channel_id, channel_parts in sorted(parts.items()):
            stats = self._merge(sorted(channel_parts, key=lambda b: b["part"]))
            self._store(channel_id, stats)

    def _merge(self, parts: list[dict[str, Any]]) -> IlluminationStats:
        """Merged statistics of a channel's run jobs (in part order; exact anyway),
        added in place: one partial in memory at a time besides the total."""
        from tmlib.illumination import IlluminationStats

        total: IlluminationStats | None = None
        for part in parts:
            path = self.partial_file(part["channel_id"], part["part"])
            try:
                partial = IlluminationStats.load(path)
            except FileNotFoundError:
                raise NotFoundError(
                    f"run job {part['job']} of corilla left no statistics ({path}): run it "
                    f"('corilla {self.experiment_id} run -j {part['job']}') or submit again"
                ) from None
            if partial.n != len(part["channel_image_file_ids"]):
                raise InvalidInputError(
                    f"{path} holds {partial.n} images, its batch "
                    f"{len(part['channel_image_file_ids'])}: run job {part['job']} again"
                )
            if total is None:
                total = partial
            else:
                total.update(partial)
        assert total is not None
        return total

    def _store(self, channel_id: int, stats: IlluminationStats) -> None:
        """Write a channel's IllumstatsFile: row and file, or neither."""
        images = tm.IllumstatsImages(
            mean=stats.mean, std=stats.std, percentiles=stats.percentiles()
        )
        new_file: str | None = None
        try:
            with tm.utils.ExperimentSession(self.experiment_id) as session:
                channel = session.get(tm.Channel, channel_id)
                if channel is None:
                    raise NotFoundError(
                        f"channel {channel_id} no longer exists: run "
                        f"'corilla {self.experiment_id} init' again"
                    )
                illumstats = channel.illumstats_file
                if illumstats is None:  # a second collect rewrites the same file in place
                    illumstats = tm.IllumstatsFile(channel_id=channel_id)
                    session.add(illumstats)
                    session.flush()
                    new_file = illumstats.location
                illumstats.put(images)
                logger.info(
                    "channel %s: statistics of %d images in %s",
                    channel.name, stats.n, illumstats.location,
                )  # fmt: skip
        except BaseException:
            if new_file is not None:  # its row was rolled back
                Path(new_file).unlink(missing_ok=True)
            raise

    # -------------------------------------------------------------- clean-up

    def delete_previous_job_output(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            directories = [c.illumstats_location for c in session.scalars(sa.select(tm.Channel))]
            session.execute(sa.delete(tm.IllumstatsFile))
        # files go after the rows are gone: no row ever points to a missing file
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(self.partial_location, ignore_errors=True)

    def output_locations(self) -> list[Path]:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            stats = [Path(c.illumstats_location) for c in session.scalars(sa.select(tm.Channel))]
        return [self.partial_location, *stats]


def _one_shape(channel: str, planes: list[tuple[tm.ChannelImageFile, int, int]]) -> tuple[int, int]:
    """The one (height, width) of a channel's planes.

    Raises
    ------
    InvalidInputError
        When the planes differ in shape.
    """
    shapes: dict[tuple[int, int], list[int]] = defaultdict(list)
    for plane, height, width in planes:
        shapes[(height, width)].append(plane.id)
    if len(shapes) > 1:
        listed = "; ".join(
            f"{h}x{w}: {len(ids)} plane(s), e.g. id {ids[0]}"
            for (h, w), ids in sorted(shapes.items())
        )
        raise InvalidInputError(
            f"the images of channel {channel!r} differ in shape ({listed}); illumination "
            "statistics need one shape per channel: check the microscope files and metaconfig"
        )
    return next(iter(shapes))


def _subset(planes: list[tm.ChannelImageFile]) -> list[tm.ChannelImageFile]:
    """All planes, or a fixed pseudo-random subset of MAX_IMAGES of them (in id order)."""
    if len(planes) <= MAX_IMAGES:
        return planes
    rng = np.random.default_rng(SUBSET_SEED)  # the same subset at every init
    chosen = rng.choice(len(planes), size=MAX_IMAGES, replace=False)
    return [planes[i] for i in np.sort(chosen)]


def _check_extracted(channel: str, planes: list[tm.ChannelImageFile]) -> None:
    """Every plane has its HDF5 file (imextract ran).

    Raises
    ------
    InvalidInputError
        Naming the first plane without pixels.
    """
    for plane in planes:
        if not os.path.exists(plane.location):
            raise InvalidInputError(
                f"image plane {plane.id} of channel {channel!r} has no extracted pixels "
                f"({plane.location}): run imextract before corilla"
            )


main = step_program(Corilla)
