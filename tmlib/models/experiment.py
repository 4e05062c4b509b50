"""The experiment and its plates: acquisitions, microscope files, wells, sites, cycles."""

from __future__ import annotations

import os

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib.models.base import ExperimentModel, JSONType, Timestamps
from tmlib.plates import (
    ACQUISITION_MODES,
    FILE_STATUSES,
    PLATE_DIMENSIONS,
    PLATE_FORMATS,
    WORKFLOW_TYPES,
    well_coordinates,
    well_name,
)


class Experiment(ExperimentModel):
    """The one row describing an experiment (its id is the reference's id)."""

    __tablename__ = "experiment"
    __table_args__ = (
        CheckConstraint("plate_format IN (1, 96, 384)", name="plate_format_valid"),
        CheckConstraint(
            "plate_acquisition_mode IN ('basic', 'multiplexing')", name="acquisition_mode_valid"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    location: Mapped[str] = mapped_column(String(4096))
    microscope_type: Mapped[str] = mapped_column(String(50))
    workflow_type: Mapped[str] = mapped_column(String(50), default="canonical")
    plate_format: Mapped[int] = mapped_column(Integer)
    plate_acquisition_mode: Mapped[str] = mapped_column(String(20), default="basic")
    pyramid_height: Mapped[int | None]
    pyramid_width: Mapped[int | None]
    pyramid_depth: Mapped[int | None]
    zoom_factor: Mapped[int] = mapped_column(Integer, default=2)
    vertical_site_displacement: Mapped[int] = mapped_column(Integer, default=0)
    horizontal_site_displacement: Mapped[int] = mapped_column(Integer, default=0)
    well_spacer_size: Mapped[int] = mapped_column(Integer, default=500)
    #: micrometres per pixel at full resolution, where the microscope's metadata
    #: say (set by metaconfig; None otherwise)
    pixel_size_um: Mapped[float | None] = mapped_column(Float)

    plates: Mapped[list[Plate]] = relationship(
        back_populates="experiment", order_by="Plate.id", cascade="all, delete-orphan"
    )

    @property
    def plate_spacer_size(self) -> int:
        return 2 * self.well_spacer_size


class Plate(Timestamps, ExperimentModel):
    """A multi-well plate; its directory holds the acquisitions' microscope files."""

    __tablename__ = "plates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))

    experiment: Mapped[Experiment] = relationship(back_populates="plates")
    acquisitions: Mapped[list[Acquisition]] = relationship(
        back_populates="plate", order_by="Acquisition.id", cascade="all, delete-orphan"
    )
    wells: Mapped[list[Well]] = relationship(
        back_populates="plate", order_by="Well.name", cascade="all, delete-orphan"
    )

    @property
    def location(self) -> str:
        return os.path.join(self.experiment.location, "plates", f"plate_{self.id}")


class Acquisition(Timestamps, ExperimentModel):
    """One imaging run of a plate (one multiplexing cycle or one set of time points)."""

    __tablename__ = "acquisitions"
    __table_args__ = (UniqueConstraint("name", "plate_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    plate_id: Mapped[int] = mapped_column(ForeignKey("plates.id", ondelete="CASCADE"), index=True)

    plate: Mapped[Plate] = relationship(back_populates="acquisitions")
    microscope_image_files: Mapped[list[MicroscopeImageFile]] = relationship(
        back_populates="acquisition", cascade="all, delete-orphan", passive_deletes=True
    )
    microscope_metadata_files: Mapped[list[MicroscopeMetadataFile]] = relationship(
        back_populates="acquisition", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def location(self) -> str:
        return os.path.join(self.plate.location, "acquisitions", f"acquisition_{self.id}")

    @property
    def microscope_images_location(self) -> str:
        return os.path.join(self.location, "microscope_images")

    @property
    def microscope_metadata_location(self) -> str:
        return os.path.join(self.location, "microscope_metadata")

    @property
    def sources_location(self) -> str:
        """Directory of the symlinks to registered source directories."""
        return os.path.join(self.location, "sources")


class _MicroscopeFile:
    """A vendor file, either stored in the acquisition or found through a source link.

    ``source`` is the name of a symlink in ``<acquisition>/sources/`` that
    points to the directory the file was registered from (one link per
    directory, not per file: 55,000 per-file links cost minutes on a cluster
    file system); it is ``None`` for files copied or uploaded into the
    acquisition's own directory.
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(20), default="WAITING")
    source: Mapped[str | None] = mapped_column(String(300))
    acquisition_id: Mapped[int] = mapped_column(
        ForeignKey("acquisitions.id", ondelete="CASCADE"), index=True
    )
    acquisition: Acquisition

    def _stored_location(self) -> str:
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Absolute path of the file (through the source link, if any)."""
        if self.source is not None:
            return os.path.join(self.acquisition.sources_location, self.source, self.name)
        return self._stored_location()


class MicroscopeImageFile(_MicroscopeFile, ExperimentModel):
    """An image file as written by the microscope (stored or symlinked)."""

    __tablename__ = "microscope_image_files"
    __table_args__ = (UniqueConstraint("name", "acquisition_id"),)

    #: what metaextract read from the file's header (planes, height, width, dtype)
    image_info: Mapped[dict | None] = mapped_column(JSONType)
    acquisition: Mapped[Acquisition] = relationship(back_populates="microscope_image_files")

    def _stored_location(self) -> str:
        return os.path.join(self.acquisition.microscope_images_location, self.name)


class MicroscopeMetadataFile(_MicroscopeFile, ExperimentModel):
    """A vendor metadata file (e.g. CellVoyager ``.mlf``/``.mrf``)."""

    __tablename__ = "microscope_metadata_files"
    __table_args__ = (UniqueConstraint("name", "acquisition_id"),)

    acquisition: Mapped[Acquisition] = relationship(back_populates="microscope_metadata_files")

    def _stored_location(self) -> str:
        return os.path.join(self.acquisition.microscope_metadata_location, self.name)


class Well(ExperimentModel):
    """A well of a plate, named like ``A01`` (row letter, two-digit column)."""

    __tablename__ = "wells"
    __table_args__ = (UniqueConstraint("name", "plate_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(Text)
    plate_id: Mapped[int] = mapped_column(ForeignKey("plates.id", ondelete="CASCADE"), index=True)

    plate: Mapped[Plate] = relationship(back_populates="wells")
    sites: Mapped[list[Site]] = relationship(
        back_populates="well", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def y(self) -> int:
        """Zero-based row index from the name (``A`` = 0)."""
        return well_coordinates(self.name)[0]

    @property
    def x(self) -> int:
        """Zero-based column index from the name (``01`` = 0)."""
        return well_coordinates(self.name)[1]


class Site(ExperimentModel):
    """An imaged field of view at grid position (y, x) within its well."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("x", "y", "well_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    omitted: Mapped[bool] = mapped_column(Boolean, default=False)
    top_residue: Mapped[int] = mapped_column(Integer, default=0)
    bottom_residue: Mapped[int] = mapped_column(Integer, default=0)
    left_residue: Mapped[int] = mapped_column(Integer, default=0)
    right_residue: Mapped[int] = mapped_column(Integer, default=0)
    well_id: Mapped[int] = mapped_column(ForeignKey("wells.id", ondelete="CASCADE"), index=True)

    well: Mapped[Well] = relationship(back_populates="sites")

    @property
    def aligned_height(self) -> int:
        return self.height - self.top_residue - self.bottom_residue

    @property
    def aligned_width(self) -> int:
        return self.width - self.left_residue - self.right_residue


class SiteShift(ExperimentModel):
    """Shift of a site in one cycle relative to the reference cycle (pixels; + = down/right)."""

    __tablename__ = "site_shifts"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycles.id", ondelete="CASCADE"), primary_key=True
    )
    y: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)


class Cycle(ExperimentModel):
    """A multiplexing round (or a block of time points in basic mode)."""

    __tablename__ = "cycles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    index: Mapped[int] = mapped_column(Integer, unique=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))


__all__ = [
    "ACQUISITION_MODES",
    "FILE_STATUSES",
    "PLATE_DIMENSIONS",
    "PLATE_FORMATS",
    "WORKFLOW_TYPES",
    "Acquisition",
    "Cycle",
    "Experiment",
    "MicroscopeImageFile",
    "MicroscopeMetadataFile",
    "Plate",
    "Site",
    "SiteShift",
    "Well",
    "well_coordinates",
    "well_name",
]
