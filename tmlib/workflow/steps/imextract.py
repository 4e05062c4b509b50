"""imextract: extract each 2D plane from the microscope files into the experiment's HDF5 store.

Planes of a z-stack are max-projected when metaconfig grouped them (``--mip``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, chunks, register_step

np = lazy_import("numpy")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")
pixels = lazy_import("tmlib.pixels")
storage = lazy_import("tmlib.storage")


@register_step
class ImExtract(Step):
    name = "imextract"
    fullname = "Extraction of pixel data"
    description = "Writes every image plane to the experiment's HDF5 store."
    requires = ("metaconfig",)
    has_collect = True
    auto_batch = (4, 100)  # a plane takes about 0.1 s
    batch_args = (
        Argument("batch_size", int, None, "Image planes per run job" + AUTO_BATCH_HELP, short="-b"),
        Argument(
            "delete",
            bool,
            False,
            "Afterwards delete microscope files copied into the experiment (and their rows).",
        ),
    )

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            ids = session.scalars(
                sa.select(tm.ChannelImageFile.id).order_by(tm.ChannelImageFile.id)
            ).all()
        if not ids:
            raise InvalidInputError(
                f"experiment {self.experiment_id} has no configured image planes; run metaconfig"
            )
        size = self.batch_size(args, len(ids))
        return [{"channel_image_file_ids": c} for c in chunks(ids, size)]

    def create_collect_batch(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"delete": args["delete"]}

    def run_job(self, batch: dict[str, Any]) -> None:
        # the database says where pixels come from and go: no connection is
        # held while they are read and written
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            planes = session.scalars(
                sa.select(tm.ChannelImageFile)
                .where(tm.ChannelImageFile.id.in_(batch["channel_image_file_ids"]))
                .order_by(tm.ChannelImageFile.id)
            ).all()
            acquisitions = {p.acquisition_id for p in planes}
            locations = {
                (f.acquisition_id, f.name): f.location
                for f in session.scalars(
                    sa.select(tm.MicroscopeImageFile).where(
                        tm.MicroscopeImageFile.acquisition_id.in_(acquisitions)
                    )
                )
            }
            targets = [p.location for p in planes]  # loads what the paths need
        for plane, target in zip(planes, targets, strict=True):
            storage.write_plane(target, self._read(plane, locations))

    @staticmethod
    def _read(plane: tm.ChannelImageFile, locations: dict[tuple[int, str], str]) -> np.ndarray:
        file_map = plane.file_map
        stack = None
        series = file_map.get("series") or [0] * len(file_map["files"])
        for name, roi, index in zip(file_map["files"], series, file_map["planes"], strict=True):
            try:
                path = locations[(plane.acquisition_id, name)]
            except KeyError:
                raise InvalidInputError(
                    f"microscope file {name} of image plane {plane.id} is not registered"
                ) from None
            pixels_ = pixels.read_plane(path, index, roi)
            stack = pixels_ if stack is None else np.maximum(stack, pixels_, out=stack)
        assert stack is not None
        return stack

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        if not batch.get("delete"):
            return
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            for f in session.scalars(sa.select(tm.MicroscopeImageFile)):
                if f.source is None:  # never delete a user's original data behind a link
                    location = Path(f.location)
                    if location.is_dir():  # a copied OME-Zarr field image
                        shutil.rmtree(location, ignore_errors=True)
                    else:
                        location.unlink(missing_ok=True)
                    session.delete(f)  # as the original: the file is gone, so is its row

    def delete_previous_job_output(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            channels = session.scalars(sa.select(tm.Channel)).all()
            for channel in channels:
                shutil.rmtree(channel.image_files_location, ignore_errors=True)

    def output_locations(self) -> list[Path]:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            return [Path(c.image_files_location) for c in session.scalars(sa.select(tm.Channel))]


main = step_program(ImExtract)
