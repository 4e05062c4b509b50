"""metaconfig: turn vendor metadata into wells, sites, channels, cycles and image planes.

Run jobs (one per acquisition) read the vendor metadata with the microscope
type's reader, fill gaps from file names (named regex) and image headers
(metaextract), place sites on their well's grid (stage positions, else the
stitch layout), group z-stacks for a maximum projection if asked, and write
the result to ``workflow/metaconfig/output/``. The collect job turns all
results into database rows in one transaction, numbering cycles and naming
channels by the plate acquisition mode (reference §5.2), and records the pixel
size the metadata give (``Experiment.pixel_size_um``: the size most planes
have, along x where known; None where no reader tells it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.microscopes import get_microscope_type
from tmlib.microscopes.base import PlaneRecord
from tmlib.microscopes.grid import STITCH_LAYOUTS, plan_site_grid
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import Step, register_step

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")


@register_step
class MetaConfig(Step):
    name = "metaconfig"
    fullname = "Configuration of image metadata"
    description = "Creates wells, sites, channels, cycles and image planes from the metadata."
    requires = ("metaextract",)
    has_collect = True
    batch_args = (
        Argument("regex", str, None, "Named regex for file names (groups w, s, c, z, t); "
                 "default: the microscope type's."),
        Argument("stitch_layout", str, "horizontal", "Order of sites in a well when the files "
                 "have no stage positions.", choices=tuple(STITCH_LAYOUTS)),
        Argument("n_vertical", int, None, "Rows of sites per well, for wells without stage "
                 "positions; default: a near-square grid for the sites per well."),
        Argument("n_horizontal", int, None, "Columns of sites per well, for wells without "
                 "stage positions; default: a near-square grid for the sites per well."),
        Argument("mip", bool, False, "Project z-stacks to their maximum intensity."),
    )  # fmt: skip

    @property
    def output_location(self) -> Path:
        return self.step_location / "output"

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            microscope = session.scalar(sa.select(tm.Experiment.microscope_type))
            acquisitions = session.scalars(
                sa.select(tm.Acquisition.id).order_by(tm.Acquisition.id)
            ).all()
        if not acquisitions:
            raise InvalidInputError(f"experiment {self.experiment_id} has no acquisitions")
        get_microscope_type(microscope).reader().pattern(args["regex"])  # check the regex now
        return [{"acquisition_id": a, "microscope_type": microscope, **args} for a in acquisitions]

    def create_collect_batch(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"mip": args["mip"]}

    # ---------------------------------------------------------------------- run

    def run_job(self, batch: dict[str, Any]) -> None:
        acquisition_id = batch["acquisition_id"]
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            acq = session.get(tm.Acquisition, acquisition_id)
            if acq is None:
                raise InvalidInputError(f"acquisition {acquisition_id} does not exist any more")
            images = session.scalars(
                sa.select(tm.MicroscopeImageFile).where(
                    tm.MicroscopeImageFile.acquisition_id == acquisition_id
                )
            ).all()
            metadata = [f.location for f in acq.microscope_metadata_files]
            headers = {f.name: f.image_info for f in images}
            paths = [f.location for f in images]
        missing = sorted(name for name, info in headers.items() if info is None)
        if missing:
            raise InvalidInputError(
                f"image file {missing[0]} has no header information; run metaextract first"
            )
        _check_pixel_types(headers)
        microscope = get_microscope_type(batch["microscope_type"])
        records = [
            _complete(r, headers[r.filename])
            for r in microscope.read(paths, metadata, batch["regex"])
        ]
        _check_bit_depths(records)
        grid = plan_site_grid(
            records, batch["stitch_layout"], batch["n_vertical"], batch["n_horizontal"]
        )
        for message in grid.messages:  # into the job's log: how the grid was chosen
            print(f"acquisition {acquisition_id}: {message}", flush=True)
        planes = _group_planes(records, grid.positions, batch["mip"])
        out = self.output_location / f"acquisition_{acquisition_id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        result = {
            "acquisition_id": acquisition_id,
            "planes": planes,
            "pixel_size_um": _most_common(r.pixel_size_x or r.pixel_size_y for r in records),
        }
        tmp.write_text(json.dumps(result))
        os.replace(tmp, out)

    # ------------------------------------------------------------------ collect

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        results = {}
        pixel_sizes = []
        for path in sorted(self.output_location.glob("acquisition_*.json")):
            data = json.loads(path.read_text())
            results[data["acquisition_id"]] = data["planes"]
            pixel_sizes.append(data.get("pixel_size_um"))
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            old_channel_dirs = _remove_configuration(session)
            experiment = session.scalar(sa.select(tm.Experiment))
            experiment.pixel_size_um = _most_common(pixel_sizes)
            multiplexing = experiment.plate_acquisition_mode == "multiplexing"
            order = (tm.Plate.created_at, tm.Plate.id, tm.Acquisition.created_at, tm.Acquisition.id)
            acquisitions = session.scalars(
                sa.select(tm.Acquisition).join(tm.Plate).order_by(*order)
            ).all()
            unconfigured = [a.name for a in acquisitions if a.id not in results]
            if unconfigured:
                raise InvalidInputError(
                    f"acquisition {unconfigured[0]!r} has no metaconfig result; rerun metaconfig"
                )
            bit_depths = {p["bit_depth"] for planes in results.values() for p in planes}
            if len(bit_depths) > 1:
                raise InvalidInputError(
                    f"all channels must have one bit depth, found {sorted(bit_depths)}"
                )
            cycles: dict[int, tm.Cycle] = {}
            channels: dict[str, tm.Channel] = {}
            wells: dict[tuple[int, str], tm.Well] = {}
            sites: dict[tuple[int, str, int, int], tm.Site] = {}
            rows = []
            tpoint_offset: dict[int, int] = defaultdict(int)
            cycle_counter: dict[int, int] = defaultdict(int)
            for acq in acquisitions:
                planes = results[acq.id]
                plate_id = acq.plate_id
                tpoints = sorted({p["tpoint"] for p in planes})
                for plane in planes:
                    t_index = tpoints.index(plane["tpoint"])
                    if multiplexing:
                        cycle_index = cycle_counter[plate_id] + t_index
                        tpoint = 0
                        channel_name = f"{cycle_index}_{plane['channel']}"
                    else:
                        cycle_index = 0
                        tpoint = tpoint_offset[plate_id] + t_index
                        channel_name = plane["channel"]
                    cycle = cycles.get(cycle_index)
                    if cycle is None:
                        cycle = cycles[cycle_index] = tm.Cycle(
                            index=cycle_index, experiment_id=experiment.id
                        )
                    channel = channels.get(channel_name)
                    if channel is None:
                        channel = channels[channel_name] = tm.Channel(
                            name=channel_name, wavelength=plane["channel"],
                            bit_depth=plane["bit_depth"], experiment_id=experiment.id,
                        )  # fmt: skip
                    well = wells.get((plate_id, plane["well"]))
                    if well is None:
                        well = wells[(plate_id, plane["well"])] = tm.Well(
                            name=plane["well"], plate_id=plate_id
                        )
                    site_key = (plate_id, plane["well"], plane["y"], plane["x"])
                    site = sites.get(site_key)
                    if site is None:
                        site = sites[site_key] = tm.Site(
                            y=plane["y"], x=plane["x"], height=plane["height"],
                            width=plane["width"], well=well,
                        )  # fmt: skip
                    rows.append((plane, tpoint, site, cycle, channel, acq.id))
                if multiplexing:
                    cycle_counter[plate_id] += len(tpoints)
                else:
                    tpoint_offset[plate_id] += len(tpoints)
            session.add_all(
                [*cycles.values(), *channels.values(), *wells.values(), *sites.values()]
            )
            session.flush()
            values = [
                {
                    "tpoint": tpoint,
                    "zplane": plane["zplane"],
                    "site_id": site.id,
                    "cycle_id": cycle.id,
                    "channel_id": channel.id,
                    "acquisition_id": acquisition_id,
                    "file_map": plane["file_map"],
                }
                for plane, tpoint, site, cycle, channel, acquisition_id in rows
            ]
            for start in range(0, len(values), 5000):
                session.execute(
                    sa.insert(tm.ChannelImageFile.__table__), values[start : start + 5000]
                )
        # only now that the new configuration is committed: planes of the old one go
        for directory in old_channel_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    # ------------------------------------------------------------------ cleanup

    def delete_previous_job_output(self) -> None:
        # The configuration itself is replaced in the collect transaction, so a
        # run that fails on bad input leaves the previous one intact.
        shutil.rmtree(self.output_location, ignore_errors=True)

    def cleanup(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            channel_dirs = _remove_configuration(session)
        for directory in channel_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self.delete_previous_job_output()


def _remove_configuration(session: Session) -> list[str]:
    """Delete wells, sites, channels, cycles and planes (and forget the pixel size);
    returns the channel directories."""
    channel_dirs = [c.location for c in session.scalars(sa.select(tm.Channel))]
    session.execute(sa.update(tm.Experiment).values(pixel_size_um=None))
    for model in (tm.ChannelImageFile, tm.ChannelLayer, tm.IllumstatsFile, tm.SiteShift,
                  tm.Channel, tm.Site, tm.Well, tm.Cycle):  # fmt: skip
        session.execute(sa.delete(model))
    return channel_dirs


def _most_common(sizes: Iterable[float | None]) -> float | None:
    """The pixel size (micrometres) found most often among `sizes` (the smaller one of
    equally frequent ones); None where none is known."""
    counts = Counter(size for size in sizes if size)
    if not counts:
        return None
    return float(min(counts, key=lambda size: (-counts[size], size)))


def _complete(record: PlaneRecord, header: dict) -> PlaneRecord:
    """Fill size and bit depth the vendor metadata left out from the image header."""
    if header["planes"] <= record.plane:
        raise InvalidInputError(
            f"image file {record.filename} has {header['planes']} planes; the metadata name "
            f"plane {record.plane}"
        )
    return replace(
        record,
        height=record.height or header["height"],
        width=record.width or header["width"],
        bit_depth=record.bit_depth or (16 if header["dtype"] == "uint16" else 8),
    )


def _check_pixel_types(headers: dict[str, dict]) -> None:
    """All image files of an acquisition must hold one pixel type (uint8 or uint16)."""
    examples = {int(info["dtype"][4:]): name for name, info in sorted(headers.items())}
    if len(examples) > 1:
        detail = ", ".join(f"{bits}-bit: {name}" for bits, name in sorted(examples.items()))
        raise InvalidInputError(f"mixed bit depths in one acquisition ({detail})")


def _check_bit_depths(records: list[PlaneRecord]) -> None:
    depths = {r.bit_depth for r in records}
    if len(depths) > 1:
        example = {r.bit_depth: r.filename for r in records}
        detail = ", ".join(f"{d}-bit: {f}" for d, f in sorted(example.items()))
        raise InvalidInputError(f"mixed bit depths in one acquisition ({detail})")


def _group_planes(
    records: list[PlaneRecord], grid: dict[tuple[str, int], tuple[int, int]], mip: bool
) -> list[dict[str, Any]]:
    """One entry per plane to extract; with `mip`, the z-planes of a stack become one."""
    groups: dict[tuple, list[PlaneRecord]] = defaultdict(list)
    for r in records:
        key = (r.well, r.site, r.channel, r.tpoint, 0 if mip else r.zplane)
        groups[key].append(r)
    planes = []
    for (well, site, channel, tpoint, zplane), members in sorted(groups.items()):
        members.sort(key=lambda r: r.zplane)
        y, x = grid[(well, site)]
        first = members[0]
        planes.append(
            {
                "well": well, "y": y, "x": x, "channel": channel, "tpoint": tpoint,
                "zplane": zplane, "height": first.height, "width": first.width,
                "bit_depth": first.bit_depth,
                "file_map": {
                    "files": [m.filename for m in members],
                    "series": [m.series for m in members],
                    "planes": [m.plane for m in members],
                },
            }
        )  # fmt: skip
    return planes


main = step_program(MetaConfig)
