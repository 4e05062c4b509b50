"""metaextract: read the header of every microscope image file (planes, size, pixel type).

Replaces the original's Bio-Formats/OME-XML extraction: the vendor metadata
are read by metaconfig; what metaconfig needs from the image files themselves
is their header, read here with tifffile without a JVM. A corrupt or truncated
file fails its job with a message naming it.
"""

from __future__ import annotations

from typing import Any

from tmlib.errors import InvalidInputError
from tmlib.lazy import lazy_import
from tmlib.workflow.args import Argument
from tmlib.workflow.cli import step_program
from tmlib.workflow.step import AUTO_BATCH_HELP, Step, chunks, register_step

sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")
pixels = lazy_import("tmlib.pixels")


@register_step
class MetaExtract(Step):
    name = "metaextract"
    fullname = "Extraction of image metadata"
    description = "Reads the header of each microscope image file."
    batch_args = (
        Argument("batch_size", int, None, "Image files per run job" + AUTO_BATCH_HELP, short="-b"),
    )
    auto_batch = (20, 1000)  # a header takes milliseconds

    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        batches = []
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            acquisitions = session.scalars(
                sa.select(tm.Acquisition).order_by(tm.Acquisition.id)
            ).all()
            files = {
                acq.id: session.scalars(
                    sa.select(tm.MicroscopeImageFile.id)
                    .where(tm.MicroscopeImageFile.acquisition_id == acq.id)
                    .order_by(tm.MicroscopeImageFile.id)
                ).all()
                for acq in acquisitions
            }
            size = self.batch_size(args, sum(len(ids) for ids in files.values()))
            found = False
            for acq in acquisitions:
                found = True
                ids = files[acq.id]
                if not ids:
                    raise InvalidInputError(
                        f"acquisition {acq.name!r} of plate {acq.plate.name!r} has no image "
                        "files; register them with 'tm_add files'"
                    )
                batches.extend({"microscope_image_file_ids": c} for c in chunks(ids, size))
            if not found:
                raise InvalidInputError(
                    f"experiment {self.experiment_id} has no acquisitions; add plates, "
                    "acquisitions and files with 'tm_add'"
                )
        return batches

    def run_job(self, batch: dict[str, Any]) -> None:
        ids = batch["microscope_image_file_ids"]
        # read where the files are, read their headers without a connection,
        # then write them in a short transaction
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            files = [
                (f.id, f.location)
                for f in session.scalars(
                    sa.select(tm.MicroscopeImageFile).where(tm.MicroscopeImageFile.id.in_(ids))
                )
            ]
        # every header first: a bad file leaves the batch unchanged
        infos = {file_id: pixels.read_header(location).to_dict() for file_id, location in files}
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            for f in session.scalars(
                sa.select(tm.MicroscopeImageFile).where(tm.MicroscopeImageFile.id.in_(list(infos)))
            ):
                f.image_info = infos[f.id]

    def delete_previous_job_output(self) -> None:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            session.execute(sa.update(tm.MicroscopeImageFile).values(image_info=None))


main = step_program(MetaExtract)
