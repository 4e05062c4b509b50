"""NGFF metadata of exported plates, built with ome-zarr-models.

Each function returns the attributes of one group (``zarr.json``'s
``attributes`` in NGFF 0.5, where they sit under ``ome`` with the version;
``.zattrs`` in 0.4, where each metadata object carries its version). They are
made from ome-zarr-models' pydantic models of the specification, so what we
write is validated as it is built; the library imports in a quarter of the
time of ome-zarr-py's writer, which brings dask along.

Examples
--------
>>> well("0.5", ["0", "1"])
{'ome': {'version': '0.5', 'well': {'images': [{'path': '0'}, {'path': '1'}]}}}
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from tmlib.omezarr.layout import check_version

__all__ = ["Level", "image", "label_image", "labels", "plate", "well"]

#: the modules of ome-zarr-models we build from (the same names in v04 and v05)
_MODULES = ("axes", "hcs", "image", "image_label", "image_label_types", "labels",
            "multiscales", "plate", "well", "well_types")  # fmt: skip
#: kind of each axis we write
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

#: (scale, translation) of one pyramid level along the axes
Level = tuple[Sequence[float], Sequence[float]]


def _models(version: str) -> SimpleNamespace:
    """The modules of ome-zarr-models for one NGFF version (``.plate.Plate``, …)."""
    package = "ome_zarr_models.v05" if check_version(version) == "0.5" else "ome_zarr_models.v04"
    return SimpleNamespace(**{name: import_module(f"{package}.{name}") for name in _MODULES})


def _inner(version: str) -> dict[str, str]:
    """The version inside each metadata object (NGFF 0.4 only)."""
    return {"version": version} if version == "0.4" else {}


def _outer(version: str) -> dict[str, str]:
    """The version beside the metadata objects (NGFF 0.5 only)."""
    return {"version": version} if version == "0.5" else {}


def _dump(version: str, attributes: Any) -> dict[str, Any]:
    dumped = attributes.model_dump(mode="json", exclude_none=True, by_alias=True)
    return {"ome": dumped} if version == "0.5" else dumped


def plate(
    version: str,
    name: str,
    rows: Sequence[str],
    columns: Sequence[str],
    wells: Sequence[str],
    field_count: int,
) -> dict[str, Any]:
    """The ``plate`` of an HCS plate group; `wells` are paths ``<row>/<column>``."""
    from ome_zarr_models.common.plate import Column, Row, WellInPlate

    m = _models(version)
    entries = []
    for path in wells:
        row, column = path.split("/")
        entries.append(
            WellInPlate(path=path, rowIndex=rows.index(row), columnIndex=columns.index(column))
        )
    content = m.plate.Plate(
        name=name,
        rows=[Row(name=r) for r in rows],
        columns=[Column(name=c) for c in columns],
        wells=entries,
        field_count=field_count,
        version=version,
    )
    return _dump(version, m.hcs.HCSAttrs(plate=content, **_outer(version)))


def well(version: str, images: Sequence[str]) -> dict[str, Any]:
    """The ``well`` of a well group: the paths of its field images."""
    from ome_zarr_models.common.well_types import WellImage

    m = _models(version)
    content = m.well_types.WellMeta(images=[WellImage(path=p) for p in images], **_inner(version))
    return _dump(version, m.well.WellAttrs(well=content, **_outer(version)))


def _multiscale(
    version: str, axes: Sequence[str], levels: Sequence[Level], units: bool, name: str
) -> Any:
    m = _models(version)
    return m.multiscales.Multiscale(
        axes=[
            m.axes.Axis(
                name=a,
                type=_AXIS_TYPES[a],
                unit="micrometer" if units and a in "yx" else None,
            )
            for a in axes
        ],
        datasets=[
            m.multiscales.Dataset.build(path=str(i), scale=scale, translation=translation)
            for i, (scale, translation) in enumerate(levels)
        ],
        name=name,
        **_inner(version),
    )


def image(
    version: str,
    axes: Sequence[str],
    levels: Sequence[Level],
    units: bool,
    name: str,
    channels: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """A field image: its multiscale levels and ``omero`` channels.

    Parameters
    ----------
    axes : sequence of str
        Axis names in order (of ``t c z y x``).
    levels : sequence of (scale, translation)
        Per level, one number per axis.
    units : bool
        Whether y and x are in micrometres (else in pixels, no unit).
    channels : sequence of dict
        ``omero`` channels: ``label``, ``color`` (``RRGGBB``), ``window``
        (``min``, ``max``, ``start``, ``end``) and the optional others.
    """
    from ome_zarr_models.common.omero import Omero

    m = _models(version)
    omero = Omero(channels=list(channels), rdefs={"defaultT": 0, "defaultZ": 0, "model": "color"})
    return _dump(
        version,
        m.image.ImageAttrs(
            multiscales=[_multiscale(version, axes, levels, units, name)],
            omero=omero,
            **_outer(version),
        ),
    )


def labels(version: str, names: Sequence[str]) -> dict[str, Any]:
    """The ``labels`` group of a field image: the names of its label images."""
    m = _models(version)
    return _dump(version, m.labels.LabelsAttrs(labels=list(names), **_outer(version)))


def label_image(
    version: str, axes: Sequence[str], levels: Sequence[Level], units: bool, name: str
) -> dict[str, Any]:
    """A label image (``labels/<name>``) of the field image two levels up."""
    m = _models(version)
    label = m.image_label_types.Label(source={"image": "../../"}, **_inner(version))
    return _dump(
        version,
        m.image_label.ImageLabelAttrs(
            multiscales=[_multiscale(version, axes, levels, units, name)],
            image_label=label,
            **_outer(version),
        ),
    )
