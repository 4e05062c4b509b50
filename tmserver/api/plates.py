"""Plates, acquisitions and the upload of microscope files (reference §7.2, §7.4)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from flask import Response, stream_with_context

import tmlib.models as tm
from tmlib import registry, upload
from tmlib.errors import NotFoundError
from tmserver.api import api
from tmserver.errors import MalformedRequestError
from tmserver.routing import Param

TAG = "plates"
ACQ_TAG = "acquisitions"
UPLOAD_TAG = "upload"


def stream_data(items: Iterable[Any]) -> Response:
    """``{"data": [...]}`` written item by item, so long lists never sit in memory whole.

    Validate everything that can fail before: once streaming, the status is 200.
    """

    def generate() -> Iterator[str]:
        yield '{"data":['
        for i, item in enumerate(items):
            yield ("," if i else "") + json.dumps(item, separators=(",", ":"))
        yield "]}"

    return Response(stream_with_context(generate()), mimetype="application/json")


def serialize_acquisition(acquisition: tm.Acquisition, status: str) -> dict:
    """``{id, name, description, status, plate_name}``."""
    return {
        "id": str(acquisition.id),
        "name": acquisition.name,
        "description": acquisition.description or "",
        "status": status,
        "plate_name": acquisition.plate.name,
    }


def _serialize_plates(session, plates: list[tm.Plate]) -> list[dict]:
    """Plates ``{id, name, description, acquisitions, status}`` with two status queries in all."""
    acquisitions = [a for plate in plates for a in plate.acquisitions]
    statuses = upload.acquisition_statuses(session, [a.id for a in acquisitions])
    result = []
    for plate in plates:
        acqs = [serialize_acquisition(a, statuses[a.id]) for a in plate.acquisitions]
        result.append(
            {
                "id": str(plate.id),
                "name": plate.name,
                "description": plate.description or "",
                "acquisitions": acqs,
                "status": upload.plate_status(a["status"] for a in acqs),
            }
        )
    return result


def _plate_data(experiment_id: int, plate_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        plate = session.get(tm.Plate, plate_id)
        if plate is None:
            raise NotFoundError(f"plate {plate_id} does not exist")
        return _serialize_plates(session, [plate])[0]


# --- plates ---------------------------------------------------------------------


@api.route(
    "GET",
    "/experiments/{experiment_id}/plates",
    summary="Plates of an experiment, with their acquisitions and upload status",
    tag=TAG,
    query={"name": Param(str, description="only the plate of this name")},
)
def get_plates(experiment_id: int, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.select(tm.Plate).order_by(tm.Plate.id)
        if name is not None:
            query = query.where(tm.Plate.name == name)
        return {"data": _serialize_plates(session, list(session.scalars(query)))}


@api.route(
    "POST",
    "/experiments/{experiment_id}/plates",
    summary="Create a plate",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True), "description": Param(str, default="")},
)
def create_plate(experiment_id: int, name: str, description: str) -> dict:
    plate_id = registry.add_plate(experiment_id, name, description or None)
    return {"data": _plate_data(experiment_id, plate_id)}


@api.route("GET", "/experiments/{experiment_id}/plates/{plate_id}", summary="A plate", tag=TAG)
def get_plate(experiment_id: int, plate_id: int) -> dict:
    return {"data": _plate_data(experiment_id, plate_id)}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/plates/{plate_id}",
    summary="Rename a plate",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_plate(experiment_id: int, plate_id: int, name: str) -> dict:
    registry.rename_plate(experiment_id, plate_id, name)
    return {"message": "ok"}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/plates/{plate_id}",
    summary="Delete a plate with its acquisitions, files, wells and sites",
    tag=TAG,
    permission="write",
)
def delete_plate(experiment_id: int, plate_id: int) -> dict:
    registry.delete_plate(experiment_id, plate_id)
    return {"message": "ok"}


# --- acquisitions ---------------------------------------------------------------


def _acquisition_data(experiment_id: int, acquisition_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        acquisition = session.get(tm.Acquisition, acquisition_id)
        if acquisition is None:
            raise NotFoundError(f"acquisition {acquisition_id} does not exist")
        statuses = upload.acquisition_statuses(session, [acquisition_id])
        return serialize_acquisition(acquisition, statuses[acquisition_id])


@api.route(
    "GET",
    "/experiments/{experiment_id}/acquisitions",
    summary="Acquisitions of an experiment",
    tag=ACQ_TAG,
    query={
        "plate_name": Param(str, description="only acquisitions of this plate"),
        "name": Param(str, description="only acquisitions of this name"),
    },
)
def get_acquisitions(experiment_id: int, plate_name: str | None, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.select(tm.Acquisition).order_by(tm.Acquisition.id)
        if plate_name is not None:
            query = query.where(
                tm.Acquisition.plate_id == registry.find_plate(session, plate_name).id
            )
        if name is not None:
            query = query.where(tm.Acquisition.name == name)
        acquisitions = list(session.scalars(query))
        statuses = upload.acquisition_statuses(session, [a.id for a in acquisitions])
        return {"data": [serialize_acquisition(a, statuses[a.id]) for a in acquisitions]}


@api.route(
    "POST",
    "/experiments/{experiment_id}/acquisitions",
    summary="Create an acquisition of a plate",
    tag=ACQ_TAG,
    permission="write",
    body={
        "plate_name": Param(str, required=True),
        "name": Param(str, required=True),
        "description": Param(str, default=""),
    },
)
def create_acquisition(experiment_id: int, plate_name: str, name: str, description: str) -> dict:
    acquisition_id = registry.add_acquisition(experiment_id, plate_name, name, description or None)
    return {"data": _acquisition_data(experiment_id, acquisition_id)}


@api.route(
    "GET",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}",
    summary="An acquisition",
    tag=ACQ_TAG,
)
def get_acquisition(experiment_id: int, acquisition_id: int) -> dict:
    return {"data": _acquisition_data(experiment_id, acquisition_id)}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}",
    summary="Rename an acquisition",
    tag=ACQ_TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_acquisition(experiment_id: int, acquisition_id: int, name: str) -> dict:
    registry.rename_acquisition(experiment_id, acquisition_id, name)
    return {"message": "ok"}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}",
    summary="Delete an acquisition and its files",
    tag=ACQ_TAG,
    permission="write",
)
def delete_acquisition(experiment_id: int, acquisition_id: int) -> dict:
    registry.delete_acquisition(experiment_id, acquisition_id)
    return {"message": "ok"}


# --- upload ---------------------------------------------------------------------


@api.route(
    "POST",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/upload/validity-check",
    summary="Which file names the microscope type accepts, and why not (``reasons``)",
    tag=UPLOAD_TAG,
    permission="write",
    body={
        "files": Param(list, required=True, items=dict, description="[{name}]"),
        "explain": Param(
            bool,
            default=False,
            description="refuse names that are no plain file names with a reason "
            "(else the request is refused)",
        ),
    },
    bulk_json=True,  # a plate has ~10^5 file names
)
def check_upload_validity(
    experiment_id: int, acquisition_id: int, files: list[dict], explain: bool
) -> dict:
    names = []
    for i, item in enumerate(files):
        if "name" not in item:
            raise MalformedRequestError(f"parameter 'files[{i}]' has no 'name'")
        names.append(item["name"])
    reasons = upload.refusals(experiment_id, acquisition_id, names, strict=not explain)
    return {"is_valid": [r is None for r in reasons], "reasons": reasons}


@api.route(
    "POST",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/upload/register",
    summary="Register files to upload; answers the names not yet uploaded",
    tag=UPLOAD_TAG,
    permission="write",
    body={"files": Param(list, required=True, items=str, description="file names")},
    bulk_json=True,  # a plate has ~10^5 file names
)
def register_upload(experiment_id: int, acquisition_id: int, files: list[str]) -> dict:
    return {"data": upload.register_uploads(experiment_id, acquisition_id, files)}


@api.route(
    "POST",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/microscope-file",
    summary="Upload one registered file (multipart field 'file')",
    tag=UPLOAD_TAG,
    permission="write",
    files={"file": Param(object, required=True, description="the file")},
)
def upload_microscope_file(experiment_id: int, acquisition_id: int, file: Any) -> dict:
    message = upload.upload_file(experiment_id, acquisition_id, file.filename, file.stream)
    return {"message": message}


@api.route(
    "GET",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/upload/count",
    summary="Number of uploaded (COMPLETE) files",
    tag=UPLOAD_TAG,
)
def get_upload_count(experiment_id: int, acquisition_id: int) -> dict:
    return {"data": upload.count_complete(experiment_id, acquisition_id)}


@api.route(
    "POST",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/register",
    summary="Register the microscope files of a server directory in place",
    tag=UPLOAD_TAG,
    permission="write",
    body={"path": Param(str, required=True, description="absolute directory on the server")},
)
def register_server_directory(experiment_id: int, acquisition_id: int, path: str) -> dict:
    result = upload.register_directory(experiment_id, acquisition_id, path)
    return {
        "message": "ok",
        "data": {
            "images": len(result.images),
            "metadata": len(result.metadata),
            "known": len(result.known),
            "skipped": len(result.skipped),
        },
    }


@api.route(
    "GET",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/images",
    summary="Microscope image files of an acquisition",
    tag=UPLOAD_TAG,
)
def get_microscope_images(experiment_id: int, acquisition_id: int) -> Response:
    upload.check_acquisition(experiment_id, acquisition_id)
    return stream_data(upload.iter_files(experiment_id, acquisition_id, "images"))


@api.route(
    "GET",
    "/experiments/{experiment_id}/acquisitions/{acquisition_id}/metadata",
    summary="Microscope metadata files of an acquisition",
    tag=UPLOAD_TAG,
)
def get_microscope_metadata(experiment_id: int, acquisition_id: int) -> Response:
    upload.check_acquisition(experiment_id, acquisition_id)
    return stream_data(upload.iter_files(experiment_id, acquisition_id, "metadata"))
