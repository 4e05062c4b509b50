"""jterator: run an image-analysis pipeline on every site (reference §5.7).

The project (``pipeline.yaml`` and ``handles/``) lives in
``<experiment>/workflow/jterator/``; ``jterator ID create`` writes the default
pipeline (nuclei, cells, their intensity, morphology and texture) for the
experiment's channels, ``jterator ID check`` checks a project.

A run job takes a batch of sites. Per site and time point it loads the input
channels (illumination-corrected where asked, always aligned between cycles),
runs the modules (:mod:`tmlib.jterator.pipeline`), and keeps the result; a site
whose pipeline fails is logged with its traceback and left out. All results
of the batch are then saved in one transaction (:mod:`tmlib.jterator.saving`).
The job fails if any site failed, after saving the others. The collect job
sets the zoom levels at which the viewer shows outlines or centroids.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from tmlib.cli.base import handle_errors
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.jterator.project import PIPELINE_FILE, Project
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, chunks, register_step
from tmlib.workflow.steps.corilla import FEW_IMAGES
from tmlib.workflow.steps.illuminati import STATIC_TYPES

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tmlib.illumination import Correction
    from tmlib.jterator.pipeline import SiteResult

cv2 = lazy_import("cv2")
np = lazy_import("numpy")
sa = lazy_import("sqlalchemy")
yaml = lazy_import("yaml")
tm = lazy_import("tmlib.models")
storage = lazy_import("tmlib.storage")

logger = logging.getLogger(__name__)

#: seed of the shuffle that spreads sites over jobs (the same at every init)
SHUFFLE_SEED = 0


@register_step
class Jterator(Step):
    name = "jterator"
    fullname = "Image analysis pipeline engine"
    description = "Segments objects and measures their features with a pipeline of modules."
    requires = ("imextract",)
    has_collect = True
    batch_args = (
        Argument("batch_size", int, None, "Sites per run job" + AUTO_BATCH_HELP, short="-b"),
        Argument("plot", bool, False, "Let modules write figures (one site per job).",
                 short="-p"),
    )  # fmt: skip
    auto_batch = (1, 100)  # a site takes seconds

    @property
    def project_location(self) -> Path:
        return self.step_location

    @property
    def figures_location(self) -> Path:
        return self.step_location / "figures"

    def load_project(self, session: Session) -> Project:
        """The experiment's project, checked against its channels.

        Raises
        ------
        NotFoundError
            When there is no project.
        PipelineError
        """
        if not (self.project_location / PIPELINE_FILE).is_file():
            raise NotFoundError(
                f"experiment {self.experiment_id} has no jterator pipeline: run "
                f"'jterator {self.experiment_id} create' (or write "
                f"{self.project_location / PIPELINE_FILE})"
            )
        project = Project.load(self.project_location)
        project.check(list(session.scalars(sa.select(tm.Channel.name))))
        return project

    def warm_up(self) -> None:
        super().warm_up()
        project = Project.load(self.project_location)
        for module in project.active_modules:
            module.code(self.project_location)

    # ------------------------------------------------------------------ init

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        if args["batch_size"] is not None and args["batch_size"] < 1:
            raise InvalidInputError("batch_size must be at least 1")
        if args["plot"] and args["batch_size"] not in (None, 1):
            raise InvalidInputError("--plot needs --batch-size 1 (one site per job)")
        if not (self.project_location / PIPELINE_FILE).is_file():
            self._create_default_project()
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            project = self.load_project(session)
            sites = list(
                session.scalars(
                    sa.select(tm.Site.id).where(tm.Site.omitted.is_(False)).order_by(tm.Site.id)
                )
            )
            if not sites:
                raise InvalidInputError(f"experiment {self.experiment_id} has no sites")
            names = [c.name for c in project.channels]
            extracted = session.scalar(
                sa.select(sa.func.count(tm.ChannelImageFile.id))
                .join(tm.Channel)
                .where(tm.Channel.name.in_(names))
            )
            if not extracted:
                raise InvalidInputError("the input channels have no image planes; run imextract")
        random.Random(SHUFFLE_SEED).shuffle(sites)  # neighbouring sites cost alike: spread them
        size = 1 if args["plot"] else self.batch_size(args, len(sites))
        return [{"site_ids": sorted(batch), "plot": args["plot"]} for batch in chunks(sites, size)]

    def _create_default_project(self) -> None:
        path = create_project(self.project_location, default_inputs(self.experiment_id))
        logger.warning("no pipeline: wrote the default one to %s", path)

    def init(self, values: dict[str, Any]) -> int:
        n = super().init(values)
        self._create_types()
        return n

    def _create_types(self) -> None:
        """Output object types and their segmentation layers, before the jobs meet."""
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            project = self.load_project(session)
            experiment = session.scalars(sa.select(tm.Experiment)).one()
            tpoints = sorted(set(session.scalars(sa.select(tm.ChannelImageFile.tpoint))))
            for output in project.output_objects:
                kind = tm.MapobjectType(
                    name=output.name, ref_type="Site", experiment_id=experiment.id
                )
                session.add(kind)
                for tpoint in tpoints:
                    session.add(tm.SegmentationLayer(mapobject_type=kind, tpoint=tpoint, zplane=0))

    # ------------------------------------------------------------------- run

    def run_job(self, batch: dict[str, Any]) -> None:
        """Run the pipeline on a batch of sites and save what it found.

        The job talks to the database twice, each time in a short session: to
        read what it needs of its sites, and to write its objects. It holds no
        connection while it reads pixels and runs the pipeline, which is most
        of its time (:func:`tmlib.models.session.use_job_connections`).
        """
        from tmlib.jterator.pipeline import run_pipeline
        from tmlib.jterator.saving import SiteOutput, prepare_site, save_prepared

        cv2.setNumThreads(1)  # one job per core: threads would only compete
        site_ids = batch["site_ids"]
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            project = self.load_project(session)
            loader = SiteLoader(session, project, site_ids=site_ids)
        polygons = {o.name: o.as_polygons for o in project.output_objects}
        failed = []
        prepared = []
        for site_id in site_ids:
            for tpoint in loader.tpoints:
                try:
                    result = run_pipeline(
                        project,
                        loader.images(site_id, tpoint),
                        loader.objects(site_id, tpoint),
                        plot=batch["plot"],
                    )
                except Exception as err:
                    # the site fails, the others go on; the traceback is in the job log
                    print(f"site {site_id}, tpoint {tpoint} failed: {err}", file=sys.stderr)
                    traceback.print_exc()
                    failed.append(site_id)
                    break
                # outlines now: the label images go, memory holds what is stored
                output = SiteOutput(site_id, tpoint, loader.offset(site_id), result)
                prepared.extend(prepare_site(output, polygons))
                if batch["plot"]:
                    self._write_figures(site_id, result)
        saved = save_prepared(self.experiment_id, [p for p in prepared if p.site_id not in failed])
        logger.info("saved %d objects of %d sites", saved, len(site_ids) - len(failed))
        if failed:
            raise InvalidInputError(
                f"the pipeline failed for {len(failed)} of {len(site_ids)} sites "
                f"(site ids {', '.join(map(str, failed[:10]))}); see the job log"
            )

    def _write_figures(self, site_id: int, result: SiteResult) -> None:
        self.figures_location.mkdir(parents=True, exist_ok=True)
        for module, figure in result.figures.items():
            path = self.figures_location / f"{module}_{site_id}.json"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(figure)
            tmp.replace(path)

    # --------------------------------------------------------------- collect

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        from tmlib.mosaic import experiment_mosaic, pyramid_levels

        with tm.utils.ExperimentSession(self.experiment_id) as session:
            project = self.load_project(session)
            experiment = session.scalars(sa.select(tm.Experiment)).one()
            depth = experiment.pyramid_depth
            if depth is None:  # no pyramid yet: the one it will have
                layout = experiment_mosaic(session)
                depth = len(pyramid_levels(layout.height, layout.width))
            max_zoom = depth - 1
            polygons = {o.name: o.as_polygons for o in project.output_objects}
            for layer in session.scalars(
                sa.select(tm.SegmentationLayer)
                .join(tm.MapobjectType)
                .where(tm.MapobjectType.name.in_(list(polygons)))
            ):
                if polygons[layer.mapobject_type.name]:
                    layer.polygon_thresh = max(max_zoom - 4, 0)
                    layer.centroid_thresh = max(layer.polygon_thresh - 2, 0)
                else:  # points only: never outlines
                    layer.polygon_thresh = max_zoom + 1
                    layer.centroid_thresh = max(max_zoom - 6, 0)

    # --------------------------------------------------------------- cleanup

    def delete_previous_job_output(self) -> None:
        static = [name for name, _ in STATIC_TYPES]
        if (self.project_location / PIPELINE_FILE).is_file():
            static += Project.load(self.project_location).objects  # inputs of the pipeline
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            # objects, outlines, features and values go with their type (ON DELETE CASCADE)
            session.execute(sa.delete(tm.MapobjectType).where(tm.MapobjectType.name.not_in(static)))
        shutil.rmtree(self.figures_location, ignore_errors=True)


@dataclass(frozen=True)
class _Site:
    """What :meth:`SiteLoader.images` needs of a site, read beforehand."""

    residues: tuple[int, int, int, int]  # top, bottom, left, right
    #: (channel name, tpoint) -> (location, cycle id) of each plane by z-plane
    planes: dict[tuple[str, int], list[tuple[str, int]]]


class SiteLoader:
    """The input images of sites as the pipeline sees them: corrected and aligned.

    Parameters
    ----------
    session : Session
        Session on the experiment, from which the loader reads what it needs.
    project : Project
    site_ids : sequence of int, optional
        The sites to be loaded: what they need is read now, and the loader
        needs `session` no more (a job closes it before it computes; input
        objects are read per site in short sessions of their own). Without,
        each site is read from `session` when it is loaded.
    """

    def __init__(
        self, session: Session, project: Project, site_ids: Sequence[int] | None = None
    ) -> None:
        from tmlib.mosaic import experiment_mosaic

        names = [c.name for c in project.channels]
        self.channels = {
            c.name: c.id
            for c in session.scalars(sa.select(tm.Channel).where(tm.Channel.name.in_(names)))
        }
        self._stats: dict[str, tm.IllumstatsFile] = {}
        for channel in project.channels:
            if channel.correct:
                stats = session.scalar(
                    sa.select(tm.IllumstatsFile)
                    .join(tm.Channel)
                    .where(tm.Channel.name == channel.name)
                )
                if stats is None:
                    raise InvalidInputError(
                        f"input channel {channel.name} is to be corrected but has no "
                        "illumination statistics: run corilla, or set 'correct: false'"
                    )
                stats.location  # noqa: B018 - loads what the path needs, for use without session
                self._stats[channel.name] = stats
        self._corrections: dict[str, Correction] | None = None
        self.aligned = session.scalar(sa.select(tm.SiteShift.site_id).limit(1)) is not None
        shifts = sa.select(tm.SiteShift.site_id, tm.SiteShift.cycle_id, tm.SiteShift.y,
                           tm.SiteShift.x)  # fmt: skip
        if site_ids is not None:  # a job's sites, not the plate's
            shifts = shifts.where(tm.SiteShift.site_id.in_(list(site_ids)))
        self.shifts = {(site, cycle): (y, x) for site, cycle, y, x in session.execute(shifts)}
        self.tpoints = list(
            session.scalars(
                sa.select(tm.ChannelImageFile.tpoint)
                .distinct()
                .order_by(tm.ChannelImageFile.tpoint)
            )
        )
        self.layout = experiment_mosaic(session, aligned=self.aligned)
        self.object_types = list(project.objects)
        self.experiment_id = session.scalars(sa.select(tm.Experiment.id)).one()
        self._sites: dict[int, _Site] = {}
        self._session: Session | None = session
        if site_ids is not None:
            self._sites = self._read_sites(session, site_ids)
            self._session = None

    @property
    def corrections(self) -> dict[str, Correction]:
        """Illumination correction of each channel to be corrected (read on first use)."""
        from tmlib.illumination import Correction

        if self._corrections is None:
            self._corrections = {
                name: Correction.from_stats(stats.get().smoothed())
                for name, stats in self._stats.items()
            }
        return self._corrections

    def _read_sites(self, session: Session, site_ids: Sequence[int]) -> dict[int, _Site]:
        """Residues and plane locations of the sites (locations made while `session` is open).

        Raises
        ------
        NotFoundError
            When a site does not exist (any more).
        """
        from sqlalchemy.orm import joinedload

        sites = {
            s.id: _Site((s.top_residue, s.bottom_residue, s.left_residue, s.right_residue), {})
            for s in session.scalars(sa.select(tm.Site).where(tm.Site.id.in_(list(site_ids))))
        }
        missing = sorted(set(site_ids) - set(sites))
        if missing:
            raise NotFoundError(
                f"sites {missing[:5]} no longer exist: run 'jterator {self.experiment_id} "
                "init' again"
            )
        names = {channel_id: name for name, channel_id in self.channels.items()}
        planes = session.scalars(
            sa.select(tm.ChannelImageFile)
            .where(
                tm.ChannelImageFile.site_id.in_(list(site_ids)),
                tm.ChannelImageFile.channel_id.in_(list(names)),
            )
            .options(joinedload(tm.ChannelImageFile.channel).joinedload(tm.Channel.experiment))
            .order_by(tm.ChannelImageFile.zplane)
        )
        for plane in planes:
            key = (names[plane.channel_id], plane.tpoint)
            sites[plane.site_id].planes.setdefault(key, []).append((plane.location, plane.cycle_id))
        return sites

    def offset(self, site_id: int) -> tuple[int, int]:
        box = self.layout.sites[site_id]
        return box.y, box.x

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        """The loader's session, else a short one of its own."""
        if self._session is not None:
            yield self._session
            return
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            yield session

    def objects(self, site_id: int, tpoint: int) -> dict[str, np.ndarray]:
        """Label images of the pipeline's input object types at the site, from their outlines.

        Raises
        ------
        InvalidInputError
            When an input object type does not exist.
        """
        from tmlib.outlines import rasterize

        if not self.object_types:
            return {}
        box = self.layout.sites[site_id]
        found = {}
        with self._reading() as session:
            for name in self.object_types:
                kind = session.scalar(
                    sa.select(tm.MapobjectType).where(tm.MapobjectType.name == name)
                )
                if kind is None:
                    raise InvalidInputError(
                        f"input objects {name!r} do not exist; run the pipeline that makes them "
                        "first"
                    )
                found[name] = session.execute(
                    sa.select(tm.MapobjectSegmentation.geom_polygon, tm.MapobjectSegmentation.label)
                    .join(tm.SegmentationLayer)
                    .where(
                        tm.SegmentationLayer.mapobject_type_id == kind.id,
                        tm.SegmentationLayer.tpoint == tpoint,
                        tm.MapobjectSegmentation.partition_key == site_id,
                    )
                ).all()
        # rasterized without a session: it is computation
        return {
            name: rasterize(
                [r[0] for r in rows], [r[1] for r in rows], (box.height, box.width), (box.y, box.x)
            )  # fmt: skip
            for name, rows in found.items()
        }

    def _site(self, site_id: int) -> _Site:
        site = self._sites.get(site_id)
        if site is None:
            if self._session is None:
                raise InvalidInputError(f"site {site_id} is not one of the loader's sites")
            site = self._read_sites(self._session, [site_id])[site_id]
        return site

    def images(self, site_id: int, tpoint: int) -> dict[str, np.ndarray]:
        """Each input channel at the site: (M, N), or (M, N, Z) for z-stacks."""
        from tmlib.alignment import shift_and_crop

        site = self._site(site_id)
        images = {}
        for name in self.channels:
            planes = site.planes.get((name, tpoint))
            if not planes:
                raise InvalidInputError(f"site {site_id} has no image of channel {name}")
            stack = []
            for location, cycle_id in planes:
                pixels = storage.read_plane(location)
                if name in self.corrections:
                    pixels = self.corrections[name](pixels)
                if self.aligned:
                    y, x = self.shifts.get((site_id, cycle_id), (0, 0))
                    pixels = shift_and_crop(pixels, y, x, *site.residues)
                stack.append(pixels)
            images[name] = stack[0] if len(stack) == 1 else np.dstack(stack)
        return images


# --------------------------------------------------------------- default pipeline

#: placeholders of the default pipeline for the cell threshold (and it + 15)
CELL_THRESHOLD, CELL_THRESHOLD_HIGH = object(), object()

#: the default pipeline: (module source, name, {input handle: key or value})
DEFAULT_PIPELINE = (
    ("smooth.py", "smooth", {"image": "{nuclei}", "filter_name": "gaussian", "filter_size": 3}),
    # Otsu's threshold lies between dim nuclei and the bright ones; lowered by a
    # fifth it keeps dim nuclei whole (mean IoU with simulated nuclei 0.85 -> 0.9)
    ("threshold_otsu.py", "threshold_otsu",
     {"image": "smooth.smoothed_image", "correction_factor": 0.8}),
    ("fill.py", "fill", {"mask": "threshold_otsu.mask"}),
    # specks of noise are no nuclei (nuclei at 10-20x are hundreds of pixels)
    ("filter.py", "filter", {"mask": "fill.filled_mask", "feature": "area",
                             "lower_threshold": 30}),
    ("label.py", "label", {"mask": "filter.filtered_mask"}),
    ("register_objects.py", "register_nuclei", {"mask": "label.label_image"}),
    ("segment_secondary.py", "segment_secondary",
     {"primary_label_image": "Nuclei", "intensity_image": "{cells}",
      "min_threshold": CELL_THRESHOLD, "max_threshold": CELL_THRESHOLD_HIGH}),
    ("register_objects.py", "register_cells", {"mask": "segment_secondary.secondary_label_image"}),
    ("measure_intensity.py", "measure_intensity_nuclei",
     {"extract_objects": "Cells", "assign_objects": "Cells", "intensity_image": "{nuclei}"}),
    ("measure_intensity.py", "measure_intensity_cells",
     {"extract_objects": "Cells", "assign_objects": "Cells", "intensity_image": "{cells}"}),
    ("measure_morphology.py", "measure_morphology",
     {"extract_objects": "Cells", "assign_objects": "Cells"}),
    ("measure_texture.py", "measure_texture",
     {"extract_objects": "Cells", "assign_objects": "Cells", "intensity_image": "{cells}"}),
    ("measure_morphology.py", "measure_morphology_nuclei",
     {"extract_objects": "Nuclei", "assign_objects": "Nuclei"}),
)  # fmt: skip
#: object keys the register modules give their output
REGISTERED = {"register_nuclei": "Nuclei", "register_cells": "Cells"}


@dataclass(frozen=True)
class DefaultInputs:
    """What the default pipeline is made for.

    Attributes
    ----------
    nuclei, cells : str
        Channels of the nuclear and the cytoplasmic stain.
    correct : bool
        Whether to correct illumination.
    cell_threshold : int
        Intensity above which the cytoplasmic stain counts as cell:
        1.5 × the channel's median (the background of a field that cells
        do not cover entirely).
    zstacks : bool
        Whether the channels hold z-stacks: the pipeline then starts with
        their maximum intensity projections (its modules take 2D images).
    """

    nuclei: str
    cells: str
    correct: bool
    cell_threshold: int
    zstacks: bool = False


def default_inputs(
    experiment_id: int, nuclei: str | None = None, cells: str | None = None
) -> DefaultInputs:
    """The default pipeline's channels (the first two), correction and cell threshold.

    Illumination is corrected when both channels have illumination statistics
    of at least :data:`~tmlib.workflow.steps.corilla.FEW_IMAGES` images; fewer
    give noisy statistics that harm more than they help.

    Raises
    ------
    InvalidInputError
        When the experiment has no channels or a named channel does not exist.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        channels = {
            c.name: c for c in session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id))
        }
        names = list(channels)
        if not names:
            raise InvalidInputError("the experiment has no channels yet; run metaconfig first")
        for name in (nuclei, cells):
            if name is not None and name not in names:
                raise InvalidInputError(f"no channel {name!r}; channels: {', '.join(names)}")
        nuclei = nuclei or names[0]
        cells = cells or (names[1] if len(names) > 1 else names[0])
        correct = all(
            channels[n].illumstats_file is not None and len(channels[n].image_files) >= FEW_IMAGES
            for n in (nuclei, cells)
        )
        stain = channels[cells]
        if stain.illumstats_file is not None:
            median = stain.illumstats_file.get().closest_percentile(50)
        elif stain.image_files:
            median = float(np.median(stain.image_files[0].get()))
        else:
            raise InvalidInputError(f"channel {cells} has no image planes; run imextract first")
        deepest = session.scalar(
            sa.select(sa.func.max(tm.ChannelImageFile.zplane)).where(
                tm.ChannelImageFile.channel_id.in_([channels[nuclei].id, channels[cells].id])
            )
        )
    return DefaultInputs(nuclei, cells, correct, int(round(1.5 * median)), bool(deepest))


def create_project(location: Path, inputs: DefaultInputs, force: bool = False) -> Path:
    """Write the default pipeline for a nuclear and a cytoplasmic channel.

    Raises
    ------
    InvalidInputError
        When a pipeline exists and `force` is false.
    """
    import jtmodules

    path = location / PIPELINE_FILE
    if path.exists() and not force:
        raise InvalidInputError(f"{path} exists; use --force to replace it")
    handles_dir = location / "handles"
    handles_dir.mkdir(parents=True, exist_ok=True)
    pipeline = []
    library = Path(jtmodules.__file__).parent
    one_channel = inputs.nuclei == inputs.cells
    steps = list(DEFAULT_PIPELINE)
    images = {"nuclei": inputs.nuclei, "cells": inputs.cells}
    projected: dict[str, str] = {}  # projection module -> key of its image
    if inputs.zstacks:  # the modules take 2D images: project each stack first
        roles = ("nuclei",) if one_channel else ("nuclei", "cells")
        steps[:0] = [("project.py", f"project_{role}", {"image": images[role], "method": "max"})
                     for role in roles]  # fmt: skip
        # keys become feature names (Intensity_max_<key>): plain words, no dots
        projected = {f"project_{role}": f"{images[role]}_mip" for role in roles}
        images = {role: projected[f"project_{roles[-1] if role == 'cells' else role}"]
                  for role in images}  # fmt: skip
    for source, name, settings in steps:
        if one_channel and name == "measure_intensity_cells":
            continue  # the same intensities as measure_intensity_nuclei
        module = source[:-3]
        handles = yaml.safe_load((library / f"{module}.handles.yaml").read_text())
        for handle in handles.get("input") or []:
            if handle["name"] in settings:
                setting = settings[handle["name"]]
                if isinstance(setting, str) and not name.startswith("project_"):
                    setting = setting.format(**images)
                elif setting is CELL_THRESHOLD:
                    setting = inputs.cell_threshold
                elif setting is CELL_THRESHOLD_HIGH:
                    setting = inputs.cell_threshold + 15
                handle["key" if "key" in handle else "value"] = setting
        for handle in handles.get("output") or []:
            if "key" in handle:
                handle["key"] = REGISTERED.get(name, f"{name}.{handle['name']}")
                if name in projected and handle["name"] == "projected_image":
                    handle["key"] = projected[name]
        (handles_dir / f"{name}.handles.yaml").write_text(yaml.safe_dump(handles, sort_keys=False))
        pipeline.append({"source": source, "handles": f"handles/{name}.handles.yaml",
                         "active": True})  # fmt: skip
    document = {
        "input": {"channels": [{"name": name, "correct": inputs.correct}
                               for name in dict.fromkeys((inputs.nuclei, inputs.cells))],
                  "objects": []},
        "pipeline": pipeline,
        "output": {"objects": [{"name": "Nuclei", "as_polygons": True},
                               {"name": "Cells", "as_polygons": True}]},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# ------------------------------------------------------------------ export


def write_features_csv(experiment_id: int, objects: str, out: BinaryIO) -> int:
    """Write one row per object of a type: where it is, its label and every feature.

    The table comes from :func:`tmlib.features.features_table_csv` (streamed,
    memory bounded by a chunk). Returns the number of rows.

    Raises
    ------
    NotFoundError
        When the experiment has no objects of that type.
    """
    from tmlib.features import features_table_csv

    rows = -1  # the header is no row
    for block in features_table_csv(experiment_id, objects):
        out.write(block)
        rows += block.count(b"\n")
    return rows


# ------------------------------------------------------------- extra commands


def _step() -> Jterator:
    return click.get_current_context().obj["step"]


@click.command(help="Write the default pipeline (nuclei, cells, intensity, morphology, "
               "texture) for the experiment's channels.")  # fmt: skip
@click.option("--nuclei", "nuclei_channel", help="Channel of the nuclear stain [default: the "
              "first channel].")  # fmt: skip
@click.option("--cells", "cells_channel", help="Channel of the cytoplasmic stain [default: the "
              "second channel, else the first].")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing pipeline.")
@handle_errors
def create(nuclei_channel: str | None, cells_channel: str | None, force: bool) -> None:
    step = _step()
    inputs = default_inputs(step.experiment_id, nuclei_channel, cells_channel)
    path = create_project(step.project_location, inputs, force)
    corrected = "corrected" if inputs.correct else "not corrected (too few images for corilla)"
    click.echo(f"wrote {path} (nuclei: {inputs.nuclei}, cells: {inputs.cells} above "
               f"{inputs.cell_threshold}, {corrected})")  # fmt: skip


@click.command(help="Check the pipeline and its handles files.")
@handle_errors
def check() -> None:
    step = _step()
    with tm.utils.ExperimentSession(step.experiment_id) as session:
        project = step.load_project(session)
    click.echo(f"pipeline {step.project_location / PIPELINE_FILE} is fine: "
               f"{len(project.active_modules)} active modules")  # fmt: skip


@click.command(help="Run the pipeline on one site without saving; print what it found.")
@click.option("--site", "site_id", type=int, required=True, help="Site id.")
@click.option("--tpoint", type=int, default=0, show_default=True)
@click.option(
    "--plot", is_flag=True, help="Write the modules' figures to workflow/jterator/figures."
)
@handle_errors
def debug(site_id: int, tpoint: int, plot: bool) -> None:
    from tmlib.jterator.pipeline import run_pipeline

    step = _step()
    with tm.utils.ExperimentSession(step.experiment_id) as session:
        if session.get(tm.Site, site_id) is None:
            raise NotFoundError(f"no site {site_id} in experiment {step.experiment_id}")
        project = step.load_project(session)
        loader = SiteLoader(session, project)
        result = run_pipeline(project, loader.images(site_id, tpoint),
                              loader.objects(site_id, tpoint), plot=plot)  # fmt: skip
    for name, features in result.features.items():
        click.echo(f"{name}: {len(features)} objects, {features.shape[1]} features")
    if plot:
        step._write_figures(site_id, result)
        click.echo(f"figures in {step.figures_location}")


@click.command("export-features", help="Write the features of all objects of a type as CSV: "
               "plate, well, site, time point, label and every feature.")  # fmt: skip
@click.option("--objects", "objects", required=True, help="Object type, e.g. Cells.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@handle_errors
def export_features(objects: str, output: Path) -> None:
    step = _step()
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with tmp.open("wb") as out:
            rows = write_features_csv(step.experiment_id, objects, out)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    click.echo(f"wrote {rows} objects to {output}")


main = step_program(Jterator, extra_commands=(create, check, debug, export_features))
