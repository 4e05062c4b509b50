"""Experiments, their shares, and the lists of supported types."""

from __future__ import annotations

from flask import g

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import NotFoundError
from tmlib.microscopes import MICROSCOPE_TYPES
from tmlib.models.experiment import ACQUISITION_MODES, PLATE_FORMATS, WORKFLOW_TYPES
from tmserver.api import api
from tmserver.errors import ForbiddenError
from tmserver.routing import Param

TAG = "experiments"


def serialize_experiment(ref: tm.ExperimentReference) -> dict:
    """``{id, name, description, user}`` (ids as decimal strings)."""
    return {
        "id": str(ref.id),
        "name": ref.name,
        "description": ref.description or "",
        "user": ref.user.name,
    }


@api.route("GET", "/workflow_types", summary="Registered workflow types", tag=TAG, permission=None)
def get_workflow_types() -> dict:
    return {"data": list(WORKFLOW_TYPES)}


@api.route(
    "GET", "/microscope_types", summary="Supported microscope types", tag=TAG, permission=None
)
def get_microscope_types() -> dict:
    return {"data": sorted(MICROSCOPE_TYPES)}


@api.route("GET", "/acquisition_modes", summary="Plate acquisition modes", tag=TAG, permission=None)
def get_acquisition_modes() -> dict:
    return {"data": list(ACQUISITION_MODES)}


@api.route(
    "GET",
    "/experiments",
    summary="The caller's own and shared experiments",
    tag=TAG,
    permission=None,
    query={"name": Param(str, description="only experiments of this name")},
)
def get_experiments(name: str | None) -> dict:
    with tm.utils.MainSession() as session:
        refs = registry.accessible_experiments(session, g.user_id, name)
        return {"data": [serialize_experiment(ref) for ref in refs]}


@api.route(
    "POST",
    "/experiments",
    summary="Create an experiment owned by the caller",
    tag=TAG,
    permission=None,
    body={
        "name": Param(str, required=True),
        "workflow_type": Param(str, enum=WORKFLOW_TYPES),
        "microscope_type": Param(str, default="cellvoyager", enum=tuple(sorted(MICROSCOPE_TYPES))),
        "plate_format": Param(int, default=384, enum=PLATE_FORMATS),
        "plate_acquisition_mode": Param(str, default="basic", enum=ACQUISITION_MODES),
        "description": Param(str, default=""),
    },
)
def create_experiment(
    name: str,
    workflow_type: str | None,
    microscope_type: str,
    plate_format: int,
    plate_acquisition_mode: str,
    description: str,
) -> dict:
    experiment_id = registry.add_experiment(
        name=name,
        user=g.user_name,
        microscope_type=microscope_type,
        plate_format=plate_format,
        plate_acquisition_mode=plate_acquisition_mode,
        workflow_type=workflow_type,
        description=description,
    )
    with tm.utils.MainSession() as session:
        return {"data": serialize_experiment(session.get(tm.ExperimentReference, experiment_id))}


@api.route(
    "GET",
    "/experiments/{experiment_id}",
    summary="An experiment, with its pixel size (pixel_size_um: micrometres per pixel at full "
    "resolution, null where the microscope's metadata do not tell it)",
    tag=TAG,
)
def get_experiment(experiment_id: int) -> dict:
    with tm.utils.MainSession() as session:
        ref = session.get(tm.ExperimentReference, experiment_id)
        if ref is None:  # deleted since the access check
            raise NotFoundError(f"experiment {experiment_id} does not exist")
        data = serialize_experiment(ref)
    data["pixel_size_um"] = registry.pixel_size(experiment_id)
    return {"data": data}


@api.route(
    "PUT",
    "/experiments/{experiment_id}",
    summary="Rename an experiment",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_experiment(experiment_id: int, name: str) -> dict:
    registry.rename_experiment(experiment_id, name)
    return {"message": "ok"}


def _require_owner(experiment_id: int) -> None:
    if g.access != "owner":  # set by the route's permission check
        raise ForbiddenError(f"only the owner of experiment {experiment_id} may do this")


@api.route(
    "DELETE",
    "/experiments/{experiment_id}",
    summary="Delete an experiment: stop its jobs, drop its data and files (owner only)",
    tag=TAG,
    permission="write",
)
def delete_experiment(experiment_id: int) -> dict:
    from tmlib.workflow import manager

    _require_owner(experiment_id)
    # every engine and job of it has ended before its data go (none may outlive them)
    manager.stop_experiment(experiment_id)
    registry.delete_experiment(experiment_id)
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/shares",
    summary="Users the experiment is shared with (owner only)",
    tag=TAG,
)
def get_shares(experiment_id: int) -> dict:
    _require_owner(experiment_id)
    with tm.utils.MainSession() as session:
        ref = session.get(tm.ExperimentReference, experiment_id)
        return {
            "data": [
                {"id": str(s.id), "user": s.user.name, "write_access": s.write_access}
                for s in ref.shares
            ]
        }


@api.route(
    "POST",
    "/experiments/{experiment_id}/shares",
    summary="Share the experiment with another user (owner only)",
    tag=TAG,
    permission="write",
    body={"user": Param(str, required=True), "write_access": Param(bool, default=False)},
)
def share_experiment(experiment_id: int, user: str, write_access: bool) -> dict:
    _require_owner(experiment_id)
    share_id = registry.share_experiment(experiment_id, user, write_access)
    return {"message": "ok", "data": {"id": str(share_id), "user": user}}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/shares",
    summary="Withdraw a user's access (owner only)",
    tag=TAG,
    permission="write",
    query={"user": Param(str, required=True)},
)
def unshare_experiment(experiment_id: int, user: str) -> dict:
    _require_owner(experiment_id)
    registry.unshare_experiment(experiment_id, user)
    return {"message": "ok"}
