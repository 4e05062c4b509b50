"""Reader for OME-Zarr HCS plates (microscope type ``ome-zarr``, NGFF 0.4 and 0.5).

Files
-----
``tm_add files -s PLATE.zarr`` registers one image "file" per field image,
named by its path inside the plate (``B/03/0``: row, column, field), and the
plate's metadata file (``zarr.json`` for NGFF 0.5, ``.zattrs`` for 0.4) as
the metadata file; the plate is validated first (:func:`list_plate`).

Conventions of the records
--------------------------
* well = the well path as a TissueMAPS name (``B/3`` and ``B/03`` -> ``B03``).
* site = the field path as a number when all field paths of the well are
  numbers (``0..n``, or ``1..n``: the site grid counts from the lowest),
  else the field's rank in the well; for Fractal's stitched images, one site
  per row of the ``FOV_ROI_table``, numbered over the well's images in order,
  and ``series`` = the ROI's row.
* channel = ``omero.channels[].label``, else the channel index (``"0"``).
* tpoint, zplane = index along the ``t`` and ``z`` axes; ``plane`` = the
  C-order flat index over the non-yx axes (:mod:`tmlib.omezarr.read`).
* stage_y, stage_x = the field's ``translation`` (dataset plus multiscale
  level, micrometres; y grows downwards like image rows), or a ROI's
  ``y_micrometer``/``x_micrometer``; None when the field has neither.
* height, width, bit depth and pixel size come from the level-0 array and
  its ``scale``; a ROI's size is its ``len_*_micrometer`` over the pixel size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tmlib.errors import InvalidInputError
from tmlib.microscopes.base import MetadataReader, PlaneRecord, SourceFiles, sort_records

if TYPE_CHECKING:
    from tmlib.omezarr.read import FieldImage

__all__ = ["OmeZarrReader", "list_plate", "site_numbers"]


def list_plate(directory: Path) -> SourceFiles:
    """The field images and the metadata file of the plate in `directory`.

    Raises
    ------
    InvalidInputError
        When `directory` holds no valid plate (see
        :func:`tmlib.omezarr.read.open_plate`).
    """
    from tmlib.omezarr.read import open_plate

    plate = open_plate(directory)
    return SourceFiles([f.path for f in plate.fields], [plate.metadata_file], [])


def _field_key(path: str) -> tuple[bool, int, str]:
    last = path.rsplit("/", 1)[-1]
    return (not last.isdigit(), int(last) if last.isdigit() else 0, last)


def site_numbers(fields: Sequence[FieldImage]) -> dict[tuple[str, int], int]:
    """Site number of every ``(field path, series)`` of the fields of one well.

    Field paths that are all numbers and hold one site each keep their
    number; otherwise the sites are counted from 0 over the fields (in the
    order of their paths, numbers first) and their ROIs.
    """
    ordered = sorted(fields, key=lambda f: _field_key(f.path))
    names = [f.path.rsplit("/", 1)[-1] for f in ordered]
    if all(n.isdigit() for n in names) and not any(f.rois for f in ordered):
        return {(f.path, 0): int(n) for f, n in zip(ordered, names, strict=True)}
    numbers: dict[tuple[str, int], int] = {}
    for field in ordered:
        for series in range(len(field.boxes)):
            numbers[(field.path, series)] = len(numbers)
    return numbers


def _records(field: FieldImage, well: str, sites: dict[tuple[str, int], int]) -> list[PlaneRecord]:
    """One record per plane and site (ROI) of a field image."""
    bit_depth = 16 if field.dtype == "uint16" else 8 if field.dtype == "uint8" else None
    size_y, size_x = field.pixel_size or (None, None)
    records = []
    for series, box in enumerate(field.boxes):
        staged = bool(field.rois) or field.translation is not None
        for plane in range(field.n_planes):
            index = field.coordinates(plane)
            records.append(
                PlaneRecord(
                    filename=field.path,
                    well=well,
                    site=sites[(field.path, series)],
                    channel=field.channels[index.get("c", 0)],
                    tpoint=index.get("t", 0),
                    zplane=index.get("z", 0),
                    stage_y=box.stage_y if staged else None,
                    stage_x=box.stage_x if staged else None,
                    height=box.height,
                    width=box.width,
                    bit_depth=bit_depth,
                    series=series,
                    plane=plane,
                    pixel_size_y=size_y,
                    pixel_size_x=size_x,
                )
            )
    return records


class OmeZarrReader(MetadataReader):
    """Plane records of the field images of an OME-Zarr HCS plate (see the module doc)."""

    name = "ome-zarr"
    #: not applied: wells, sites and channels come from the plate's metadata
    default_regex = r"(?P<w>[^/]+/[^/]+)/(?P<s>[^/]+)$"
    required_groups = frozenset()

    @classmethod
    def list_source(cls, directory: Path) -> SourceFiles:
        """The plate's field images and metadata file (:func:`list_plate`)."""
        return list_plate(directory)

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """One record per plane (and ROI) of each registered field image.

        `image_files` are the field image directories (their last three
        path parts are the registered names); `metadata_files` are not
        needed: each field image describes itself.

        Raises
        ------
        InvalidInputError
            When `regex` is given, a field image cannot be read, or the
            fields differ (:func:`tmlib.omezarr.read.check_uniform`).
        """
        from tmlib.omezarr.read import check_uniform, open_field, well_of

        if regex is not None:
            raise InvalidInputError(
                "ome-zarr plates name their wells, sites and channels in their metadata; "
                "do not give a regex"
            )
        fields = [open_field(path) for path in image_files]
        check_uniform(fields)
        wells: dict[str, list[FieldImage]] = defaultdict(list)
        for field in fields:
            wells[well_of(field.path)].append(field)
        records: list[PlaneRecord] = []
        for well, members in wells.items():
            sites = site_numbers(members)
            for field in members:
                records.extend(_records(field, well, sites))
        return sort_records(records)
