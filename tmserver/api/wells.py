"""Cycles, wells and sites (reference §7.2, shapes §7.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import sqlalchemy as sa
from flask import Response

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import NotFoundError
from tmserver.api import api
from tmserver.api.plates import stream_data
from tmserver.routing import Param

TAG = "wells"


# --- cycles ---------------------------------------------------------------------


def _cycles(session, where: list) -> list[dict]:
    """``{id, index, tpoint}``; tpoint: the first time point imaged in the cycle."""
    first_tpoint = (
        sa.select(sa.func.min(tm.ChannelImageFile.tpoint))
        .where(tm.ChannelImageFile.cycle_id == tm.Cycle.id)
        .scalar_subquery()
    )
    rows = session.execute(
        sa.select(tm.Cycle.id, tm.Cycle.index, first_tpoint).where(*where).order_by(tm.Cycle.index)
    )
    return [
        {"id": str(cycle_id), "index": index, "tpoint": tpoint or 0}
        for cycle_id, index, tpoint in rows
    ]


@api.route(
    "GET",
    "/experiments/{experiment_id}/cycles",
    summary="Cycles (multiplexing rounds) of an experiment",
    tag=TAG,
    query={
        "plate_name": Param(str, description="only cycles imaged on this plate"),
        "index": Param(int, minimum=0, description="only the cycle of this index"),
    },
)
def get_cycles(experiment_id: int, plate_name: str | None, index: int | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        where = []
        if plate_name is not None:
            plate = registry.find_plate(session, plate_name)
            imaged = (
                sa.select(tm.ChannelImageFile.cycle_id)
                .join(tm.Acquisition, tm.Acquisition.id == tm.ChannelImageFile.acquisition_id)
                .where(tm.Acquisition.plate_id == plate.id)
            )
            where.append(tm.Cycle.id.in_(imaged))
        if index is not None:
            where.append(tm.Cycle.index == index)
        return {"data": _cycles(session, where)}


@api.route("GET", "/experiments/{experiment_id}/cycles/{cycle_id}", summary="A cycle", tag=TAG)
def get_cycle(experiment_id: int, cycle_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        found = _cycles(session, [tm.Cycle.id == cycle_id])
        if not found:
            raise NotFoundError(f"cycle {cycle_id} does not exist")
        return {"data": found[0]}


# --- wells ----------------------------------------------------------------------


def _description(text: str | None) -> object:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:  # written by hand as plain text
        return text


def _wells(session, where: list) -> list[dict]:
    """``{id, name, description, plate_name, dimensions [rows, cols]}`` (site grid size)."""
    grid = (
        sa.select(
            tm.Site.well_id,
            (sa.func.max(tm.Site.y) + 1).label("rows"),
            (sa.func.max(tm.Site.x) + 1).label("cols"),
        )
        .group_by(tm.Site.well_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(
            tm.Well.id, tm.Well.name, tm.Well.description, tm.Plate.name, grid.c.rows, grid.c.cols
        )  # fmt: skip
        .join(tm.Plate, tm.Plate.id == tm.Well.plate_id)
        .outerjoin(grid, grid.c.well_id == tm.Well.id)
        .where(*where)
        .order_by(tm.Plate.id, tm.Well.name)
    )
    return [
        {
            "id": str(well_id),
            "name": name,
            "description": _description(description),
            "plate_name": plate_name,
            "dimensions": [n_rows or 0, n_cols or 0],
        }
        for well_id, name, description, plate_name, n_rows, n_cols in rows
    ]


@api.route(
    "GET",
    "/experiments/{experiment_id}/wells",
    summary="Wells of an experiment",
    tag=TAG,
    query={
        "plate_name": Param(str, description="only wells of this plate"),
        "name": Param(str, description="only wells of this name, e.g. A01"),
    },
)
def get_wells(experiment_id: int, plate_name: str | None, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        where = []
        if plate_name is not None:
            where.append(tm.Well.plate_id == registry.find_plate(session, plate_name).id)
        if name is not None:
            where.append(tm.Well.name == name)
        return {"data": _wells(session, where)}


@api.route("GET", "/experiments/{experiment_id}/wells/{well_id}", summary="A well", tag=TAG)
def get_well(experiment_id: int, well_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        found = _wells(session, [tm.Well.id == well_id])
        if not found:
            raise NotFoundError(f"well {well_id} does not exist")
        return {"data": found[0]}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/wells/{well_id}",
    summary="Describe a well (a JSON object, e.g. compound and gene)",
    tag=TAG,
    permission="write",
    body={"description": Param(dict, required=True)},
)
def describe_well(experiment_id: int, well_id: int, description: dict) -> dict:
    registry.set_well_description(experiment_id, well_id, description)
    return {"message": "ok"}


# --- sites ----------------------------------------------------------------------


def _site_query(where: list) -> sa.Select:
    return (
        sa.select(
            tm.Site.id,
            tm.Site.y,
            tm.Site.x,
            tm.Site.height,
            tm.Site.width,
            tm.Well.name,
            tm.Plate.name,
        )  # fmt: skip
        .join(tm.Well, tm.Well.id == tm.Site.well_id)
        .join(tm.Plate, tm.Plate.id == tm.Well.plate_id)
        .where(*where)
        .order_by(tm.Plate.id, tm.Well.name, tm.Site.y, tm.Site.x)
    )


def _site_dict(row) -> dict:
    site_id, y, x, height, width, well_name, plate_name = row
    return {
        "id": str(site_id),
        "y": y,
        "x": x,
        "height": height,
        "width": width,
        "well_name": well_name,
        "plate_name": plate_name,
    }


def _iter_sites(experiment_id: int, where: list) -> Iterator[dict]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.execute(_site_query(where).execution_options(yield_per=2000))
        for row in rows:
            yield _site_dict(row)


@api.route(
    "GET",
    "/experiments/{experiment_id}/sites",
    summary="Sites of an experiment",
    tag=TAG,
    query={
        "plate_name": Param(str, description="only sites of this plate"),
        "well_name": Param(str, description="only sites of wells of this name"),
        "well_pos_x": Param(int, minimum=0, description="only sites in this grid column"),
        "well_pos_y": Param(int, minimum=0, description="only sites in this grid row"),
    },
)
def get_sites(
    experiment_id: int,
    plate_name: str | None,
    well_name: str | None,
    well_pos_x: int | None,
    well_pos_y: int | None,
) -> Response:
    where = []
    with tm.utils.ExperimentSession(experiment_id) as session:
        if plate_name is not None:
            where.append(tm.Plate.id == registry.find_plate(session, plate_name).id)
    if well_name is not None:
        where.append(tm.Well.name == well_name)
    if well_pos_x is not None:
        where.append(tm.Site.x == well_pos_x)
    if well_pos_y is not None:
        where.append(tm.Site.y == well_pos_y)
    # a plate has up to 384 x 36 sites: stream them
    return stream_data(_iter_sites(experiment_id, where))


@api.route("GET", "/experiments/{experiment_id}/sites/{site_id}", summary="A site", tag=TAG)
def get_site(experiment_id: int, site_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        row = session.execute(_site_query([tm.Site.id == site_id])).first()
        if row is None:
            raise NotFoundError(f"site {site_id} does not exist")
        return {"data": _site_dict(row)}
