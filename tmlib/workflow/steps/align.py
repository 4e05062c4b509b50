"""align: register the images of every multiplexing cycle to a reference cycle (reference §5.5).

For every site, the image of the reference wavelength in each cycle is
registered to the one in the reference cycle by FFT phase correlation
(:func:`tmlib.alignment.register`), giving an integer shift ``(y, x)`` per site
and cycle with the convention ``target[r + y, c + x] ≈ reference[r, c]`` (+ =
down/right). Run jobs write their shifts to ``workflow/align/output/`` (one
file per job, written atomically, so a failed job leaves nothing half-done in
the database); the collect job stores them as :class:`tmlib.models.SiteShift`
rows (the reference cycle gets ``(0, 0)``) and sets each site's residues
(:func:`tmlib.alignment.residues`), all in one transaction. Consumers
(illuminati with ``--align``, jterator) cut every cycle's image with
:func:`tmlib.alignment.shift_and_crop`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, chunks, register_step

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tmlib.illumination import Correction

np = lazy_import("numpy")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")
alignment = lazy_import("tmlib.alignment")

#: rows per INSERT/UPDATE statement in the collect transaction
_CHUNK = 5000


@dataclass(frozen=True)
class _Arg(Argument):
    """An argument whose long option is not derived from its name (``--clip-percent``)."""

    option: str | None = None

    @property
    def flag(self) -> str:
        return self.option or super().flag


@register_step
class Align(Step):
    """Shifts of every site in every cycle relative to the reference cycle.

    Batches (init): sites in chunks of ``batch_size``, each naming the plane
    of the reference wavelength in the reference cycle (``reference``) and in
    every other cycle (``targets``: ``[cycle_id, channel_image_file_id]``
    pairs), the first time point and z-plane; omitted sites are skipped.
    Run: ``workflow/align/output/shifts_<job>.json`` with rows ``[site_id,
    cycle_id, y, x]``. Collect: SiteShift rows and site residues.
    """

    name = "align"
    fullname = "Alignment of images between cycles"
    description = (
        "Registers every cycle's images to a reference cycle and stores the shift of each site."
    )
    requires = ("imextract",)
    has_collect = True
    auto_batch = (4, 100)
    batch_args = (
        Argument("ref_cycle", int, 0, "Index of the reference cycle (from 0).", short="-c"),
        Argument("ref_wavelength", str, None, "Wavelength (channel name without the cycle "
                 "prefix) imaged in every cycle, e.g. the nuclear stain [default: the first, "
                 "in sorted order, that every cycle has].", short="-w"),
        Argument("batch_size", int, None, "Sites per run job" + AUTO_BATCH_HELP, short="-b"),
        Argument("illumcorr", bool, False, "Correct illumination (corilla statistics) before "
                 "registering.", short="-i"),
        Argument("robust_align", bool, False, "Clip each image at --clip-percent before "
                 "registering, so that a few very bright objects cannot dominate.", short="-r"),
        _Arg("rescale_percentile", float, 99.9, "Percentile at which --robust-align clips.",
             option="--clip-percent"),
    )  # fmt: skip

    @property
    def output_location(self) -> Path:
        return self.step_location / "output"

    def output_file(self, job_id: int) -> Path:
        return self.output_location / f"shifts_{job_id:07d}.json"

    # --------------------------------------------------------------------- init

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        if args["batch_size"] is not None and args["batch_size"] < 1:
            raise InvalidInputError(f"batch_size must be at least 1, got {args['batch_size']}")
        if not 0 < args["rescale_percentile"] <= 100:
            raise InvalidInputError(
                f"rescale_percentile must be within (0, 100], got {args['rescale_percentile']}"
            )
        wavelength = args["ref_wavelength"]
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            experiment = session.scalar(sa.select(tm.Experiment))
            if experiment is None:
                raise InvalidInputError(f"experiment {self.experiment_id} has no data")
            cycles = {i: c for i, c in session.execute(sa.select(tm.Cycle.index, tm.Cycle.id))}
            self._check_cycles(experiment.plate_acquisition_mode, cycles, args["ref_cycle"])
            ref_cycle_id = cycles[args["ref_cycle"]]
            if wavelength is None:
                wavelength = self._common_wavelength(session, len(cycles))
            index_of = {cycle_id: index for index, cycle_id in cycles.items()}
            # one plane per (site, cycle): the first time point and z-plane
            rows = session.execute(
                sa.select(
                    tm.ChannelImageFile.site_id,
                    tm.ChannelImageFile.cycle_id,
                    tm.ChannelImageFile.id,
                    tm.ChannelImageFile.channel_id,
                    tm.Site.omitted,
                )
                .join(tm.Channel, tm.Channel.id == tm.ChannelImageFile.channel_id)
                .join(tm.Site, tm.Site.id == tm.ChannelImageFile.site_id)
                .where(tm.Channel.wavelength == wavelength)
                .order_by(
                    tm.ChannelImageFile.site_id,
                    tm.ChannelImageFile.cycle_id,
                    tm.ChannelImageFile.tpoint,
                    tm.ChannelImageFile.zplane,
                    tm.ChannelImageFile.id,
                )
            ).all()
            planes: dict[int, dict[int, int]] = defaultdict(dict)
            channel_of_cycle: dict[int, int] = {}
            for site_id, cycle_id, file_id, channel_id, omitted in rows:
                channel_of_cycle.setdefault(cycle_id, channel_id)
                if not omitted:  # omitted sites are neither aligned nor cropped
                    planes[site_id].setdefault(cycle_id, file_id)
            missing = sorted(index_of[c] for c in cycles.values() if c not in channel_of_cycle)
            if missing:
                self._missing_wavelength(session, wavelength, missing[0], cycles)
            for site_id, by_cycle in planes.items():
                if len(by_cycle) != len(cycles):
                    lacking = min(index_of[c] for c in cycles.values() if c not in by_cycle)
                    raise InvalidInputError(
                        f"site {site_id} has no {wavelength} image in cycle {lacking}; every "
                        "site needs one in every cycle (rerun metaconfig, or mark the site "
                        "omitted)"
                    )
            if args["illumcorr"]:
                with_stats = set(
                    session.scalars(
                        sa.select(tm.IllumstatsFile.channel_id).where(
                            tm.IllumstatsFile.channel_id.in_(channel_of_cycle.values())
                        )
                    )
                )
                lacking = sorted(
                    index_of[c] for c, ch in channel_of_cycle.items() if ch not in with_stats
                )
                if lacking:
                    raise InvalidInputError(
                        f"--illumcorr needs illumination statistics of wavelength {wavelength} "
                        f"in cycle {lacking[0]}; run corilla first (or align without -i)"
                    )
            if not planes:
                raise InvalidInputError(
                    f"experiment {self.experiment_id} has no site to align (all omitted?)"
                )
            first_site = planes[min(planes)]
            self._check_extracted(session, list(first_site.values()))
        sites = [
            {
                "site_id": site_id,
                "reference": by_cycle[ref_cycle_id],
                "targets": [
                    [cycle_id, file_id]
                    for cycle_id, file_id in sorted(by_cycle.items())
                    if cycle_id != ref_cycle_id
                ],
            }
            for site_id, by_cycle in sorted(planes.items())
        ]
        common = {
            "ref_cycle_id": ref_cycle_id,
            "illumcorr": args["illumcorr"],
            "robust_align": args["robust_align"],
            "rescale_percentile": args["rescale_percentile"],
        }
        return [
            {**common, "sites": chunk} for chunk in chunks(sites, self.batch_size(args, len(sites)))
        ]

    def _common_wavelength(self, session: Session, n_cycles: int) -> str:
        """The first wavelength (sorted) that every cycle imaged."""
        common = session.scalars(
            sa.select(tm.Channel.wavelength)
            .join(tm.ChannelImageFile, tm.ChannelImageFile.channel_id == tm.Channel.id)
            .group_by(tm.Channel.wavelength)
            .having(sa.func.count(sa.distinct(tm.ChannelImageFile.cycle_id)) == n_cycles)
            .order_by(tm.Channel.wavelength)
        ).first()
        if common is None:
            raise InvalidInputError(
                f"no wavelength is imaged in all {n_cycles} cycles of experiment "
                f"{self.experiment_id}; align needs one as reference (--ref-wavelength)"
            )
        return common

    def _check_cycles(self, mode: str, cycles: dict[int, int], ref_cycle: int) -> None:
        eid = self.experiment_id
        if not cycles:
            raise InvalidInputError(
                f"align needs at least two cycles; experiment {eid} has none (run metaconfig)"
            )
        if mode != "multiplexing" or len(cycles) < 2:
            detail = "one" if len(cycles) == 1 else f"{len(cycles)} but is not in multiplexing mode"
            raise InvalidInputError(
                f"align needs at least two cycles; experiment {eid} has {detail} (align is "
                "for multiplexing experiments: one acquisition per cycle, created with "
                "--plate-acquisition-mode multiplexing)"
            )
        if ref_cycle not in cycles:
            raise InvalidInputError(
                f"reference cycle {ref_cycle} does not exist; experiment {eid} has cycles "
                f"{', '.join(map(str, sorted(cycles)))}"
            )

    def _missing_wavelength(
        self, session: Session, wavelength: str, cycle_index: int, cycles: dict[int, int]
    ) -> None:
        found = (
            session.execute(
                sa.select(tm.Channel.wavelength)
                .join(tm.ChannelImageFile, tm.ChannelImageFile.channel_id == tm.Channel.id)
                .where(tm.ChannelImageFile.cycle_id == cycles[cycle_index])
                .distinct()
            )
            .scalars()
            .all()
        )
        raise InvalidInputError(
            f"wavelength {wavelength!r} is not imaged in cycle {cycle_index}; wavelengths "
            f"there: {', '.join(sorted(found)) or 'none'} (give one of every cycle with -w)"
        )

    @staticmethod
    def _check_extracted(session: Session, file_ids: list[int]) -> None:
        """Cheap check that imextract ran: the planes of one site exist."""
        from sqlalchemy.orm import joinedload

        files = session.scalars(
            sa.select(tm.ChannelImageFile)
            .where(tm.ChannelImageFile.id.in_(file_ids))
            .options(joinedload(tm.ChannelImageFile.channel).joinedload(tm.Channel.experiment))
        ).all()
        for f in files:
            if not os.path.exists(f.location):
                raise InvalidInputError(
                    f"image plane {f.id} has no pixels ({f.location}); run imextract first"
                )

    # ---------------------------------------------------------------------- run

    def run_job(self, batch: dict[str, Any]) -> None:
        from sqlalchemy.orm import joinedload

        from tmlib.illumination import Correction

        ids = [s["reference"] for s in batch["sites"]]
        ids += [file_id for s in batch["sites"] for _, file_id in s["targets"]]
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            files = {
                f.id: f
                for f in session.scalars(
                    sa.select(tm.ChannelImageFile)
                    .where(tm.ChannelImageFile.id.in_(ids))
                    .options(
                        joinedload(tm.ChannelImageFile.channel).joinedload(tm.Channel.experiment)
                    )
                )
            }
            unknown = sorted(set(ids) - set(files))
            if unknown:
                raise InvalidInputError(
                    f"image plane {unknown[0]} does not exist any more; rerun align init"
                )
            stats: dict[int, tm.IllumstatsFile] = {}
            if batch["illumcorr"]:
                channels = {f.channel_id for f in files.values()}
                stats = {
                    item.channel_id: item
                    for item in session.scalars(
                        sa.select(tm.IllumstatsFile)
                        .where(tm.IllumstatsFile.channel_id.in_(channels))
                        .options(
                            joinedload(tm.IllumstatsFile.channel).joinedload(tm.Channel.experiment)
                        )
                    )
                }
                lacking = sorted(channels - set(stats))
                if lacking:
                    raise InvalidInputError(
                        f"channel {lacking[0]} has no illumination statistics; run corilla "
                        "first (or align without -i)"
                    )
            session.expunge_all()  # plain objects from here on: no lazy loads, no open session
        # read and smoothed without a connection, as every consumer of the statistics uses them
        corrections: dict[int, Correction] = {
            channel_id: Correction.from_stats(item.get().smoothed())
            for channel_id, item in stats.items()
        }

        def prepared(file_id: int) -> np.ndarray:
            plane = files[file_id]
            image = plane.get()
            if batch["illumcorr"]:
                image = corrections[plane.channel_id](image)
            if batch["robust_align"]:
                image = alignment.clip_percentile(image, batch["rescale_percentile"])
            return image

        shifts = []
        for site in batch["sites"]:
            reference = prepared(site["reference"])
            shifts.append([site["site_id"], batch["ref_cycle_id"], 0, 0])
            for cycle_id, file_id in site["targets"]:
                target = prepared(file_id)
                if target.shape != reference.shape:
                    raise InvalidInputError(
                        f"image plane {file_id} is {target.shape[0]}x{target.shape[1]} pixels, "
                        f"the reference plane {site['reference']} of site {site['site_id']} "
                        f"{reference.shape[0]}x{reference.shape[1]}"
                    )
                y, x = alignment.register(reference, target)
                shifts.append([site["site_id"], cycle_id, y, x])
        out = self.output_file(batch["id"])
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps({"job_id": batch["id"], "shifts": shifts}))
        os.replace(tmp, out)

    # ------------------------------------------------------------------ collect

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        shifts: list[tuple[int, int, int, int]] = []
        for job_id in self.run_job_ids():
            expected = {s["site_id"] for s in self.read_batch("run", job_id)["sites"]}
            try:
                data = json.loads(self.output_file(job_id).read_text())
            except FileNotFoundError:
                raise InvalidInputError(
                    f"align run job {job_id} has no result; run it again (align "
                    f"{self.experiment_id} run -j {job_id}, or resubmit)"
                ) from None
            rows = [tuple(int(v) for v in row) for row in data["shifts"]]
            if {row[0] for row in rows} != expected:
                raise InvalidInputError(
                    f"align run job {job_id} has results of other sites than its batch; "
                    f"rerun align init"
                )
            shifts.extend(rows)
        by_site: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for site_id, _cycle_id, y, x in shifts:
            by_site[site_id].append((y, x))
        residue_rows = []
        for site_id, site_shifts in sorted(by_site.items()):
            top, bottom, left, right = alignment.residues(site_shifts)
            residue_rows.append(
                {"id": site_id, "top_residue": top, "bottom_residue": bottom,
                 "left_residue": left, "right_residue": right}
            )  # fmt: skip
        shift_rows = [
            {"site_id": s, "cycle_id": c, "y": y, "x": x} for s, c, y, x in sorted(shifts)
        ]
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            self._reset(session)
            for start in range(0, len(shift_rows), _CHUNK):
                session.execute(
                    sa.insert(tm.SiteShift.__table__), shift_rows[start : start + _CHUNK]
                )
            for start in range(0, len(residue_rows), _CHUNK):
                session.execute(sa.update(tm.Site), residue_rows[start : start + _CHUNK])

    # ------------------------------------------------------------------ cleanup

    @staticmethod
    def _reset(session: Session) -> None:
        session.execute(sa.delete(tm.SiteShift))
        session.execute(
            sa.update(tm.Site).values(
                top_residue=0, bottom_residue=0, left_residue=0, right_residue=0
            )
        )

    def delete_previous_job_output(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            self._reset(session)
        shutil.rmtree(self.output_location, ignore_errors=True)


main = step_program(Align)
