"""Channels, their extracted image planes, illumination statistics and display layers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib import storage
from tmlib.models.base import ExperimentModel, JSONType


class Channel(ExperimentModel):
    """An imaging channel (wavelength); all its planes share one bit depth."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    wavelength: Mapped[str] = mapped_column(String(255))
    bit_depth: Mapped[int] = mapped_column(Integer)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))

    experiment = relationship("Experiment")
    image_files: Mapped[list[ChannelImageFile]] = relationship(
        back_populates="channel", cascade="all, delete-orphan", passive_deletes=True
    )
    illumstats_file: Mapped[IllumstatsFile | None] = relationship(
        back_populates="channel", cascade="all, delete-orphan", passive_deletes=True
    )
    layers: Mapped[list[ChannelLayer]] = relationship(
        back_populates="channel", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def location(self) -> str:
        return os.path.join(self.experiment.location, "channels", f"channel_{self.id}")

    @property
    def image_files_location(self) -> str:
        return os.path.join(self.location, "images")

    @property
    def illumstats_location(self) -> str:
        return os.path.join(self.location, "illumstats")


class ChannelImageFile(ExperimentModel):
    """One extracted 2D plane of a site, channel, cycle, time point and z-plane.

    ``file_map`` records where the pixels came from: lists ``files`` (microscope
    file names), ``series`` and ``planes`` (indices within those files).
    """

    __tablename__ = "channel_image_files"
    __table_args__ = (
        UniqueConstraint("tpoint", "zplane", "site_id", "cycle_id", "channel_id", "acquisition_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tpoint: Mapped[int] = mapped_column(Integer, default=0)
    zplane: Mapped[int] = mapped_column(Integer, default=0)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    acquisition_id: Mapped[int] = mapped_column(
        ForeignKey("acquisitions.id", ondelete="CASCADE"), index=True
    )
    file_map: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    channel: Mapped[Channel] = relationship(back_populates="image_files")
    site = relationship("Site")
    cycle = relationship("Cycle")
    acquisition = relationship("Acquisition")

    @property
    def location(self) -> str:
        return os.path.join(self.channel.image_files_location, f"channel_image_file_{self.id}.h5")

    def get(self) -> np.ndarray:
        """Read the plane.

        Returns
        -------
        ndarray, shape (height, width), dtype uint8 or uint16
        """
        return storage.read_plane(self.location)

    def put(self, pixels: np.ndarray) -> None:
        """Write the plane (atomically; replaces an earlier one).

        Parameters
        ----------
        pixels : ndarray, shape (height, width), dtype uint8 or uint16
        """
        storage.write_plane(self.location, pixels)


@dataclass(frozen=True)
class IllumstatsImages:
    """Illumination statistics of a channel in log10 space.

    Attributes
    ----------
    mean, std : ndarray, shape (height, width), dtype float64
        Per-pixel mean and standard deviation of log10 intensities.
    percentiles : dict of float to float
        Intensity percentiles of the raw images, averaged over images.
    """

    mean: np.ndarray
    std: np.ndarray
    percentiles: dict[float, float]


class IllumstatsFile(ExperimentModel):
    """Illumination statistics of one channel (HDF5: ``mean``, ``std``, ``percentiles/*``)."""

    __tablename__ = "illumstats_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), unique=True
    )

    channel: Mapped[Channel] = relationship(back_populates="illumstats_file")

    @property
    def location(self) -> str:
        return os.path.join(self.channel.illumstats_location, f"illumstats_file_{self.id}.h5")

    def get(self) -> IllumstatsImages:
        """Read the statistics as stored (no smoothing)."""
        path = self.location
        keys = storage.read_dataset(path, "percentiles/keys")
        values = storage.read_dataset(path, "percentiles/values")
        return IllumstatsImages(
            mean=storage.read_dataset(path, "mean"),
            std=storage.read_dataset(path, "std"),
            percentiles={float(k): float(v) for k, v in zip(keys, values, strict=True)},
        )

    def put(self, stats: IllumstatsImages) -> None:
        """Write the statistics atomically."""
        keys = np.array(sorted(stats.percentiles), dtype=np.float64)
        storage.write_datasets(
            self.location,
            {
                "mean": np.asarray(stats.mean, dtype=np.float64),
                "std": np.asarray(stats.std, dtype=np.float64),
                "percentiles/keys": keys,
                "percentiles/values": np.array(
                    [stats.percentiles[k] for k in keys], dtype=np.float64
                ),
            },
        )


class ChannelLayer(ExperimentModel):
    """A zoomable pyramid of one channel at one time point and z-plane."""

    __tablename__ = "channel_layers"
    __table_args__ = (UniqueConstraint("zplane", "tpoint", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tpoint: Mapped[int] = mapped_column(Integer, default=0)
    zplane: Mapped[int] = mapped_column(Integer, default=0)
    min_intensity: Mapped[float | None] = mapped_column(Float)
    max_intensity: Mapped[float | None] = mapped_column(Float)
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )

    channel: Mapped[Channel] = relationship(back_populates="layers")

    tile_size = 256
