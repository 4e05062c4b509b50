"""Channels, their extracted image planes, illumination statistics and display layers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib.lazy import lazy_import
from tmlib.models.base import ExperimentModel, JSONType

if TYPE_CHECKING:
    from tmlib.tiles import TileReader

np = lazy_import("numpy")
illumination = lazy_import("tmlib.illumination")
storage = lazy_import("tmlib.storage")


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

    @property
    def layers_location(self) -> str:
        return os.path.join(self.location, "layers")


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

    def get(self, rows: slice | None = None) -> np.ndarray:
        """Read the plane (or a band of its rows, which reads only those).

        Returns
        -------
        ndarray, shape (height, width), dtype uint8 or uint16
        """
        return storage.read_plane(self.location, rows)

    def put(self, pixels: np.ndarray) -> None:
        """Write the plane (atomically; replaces an earlier one).

        Parameters
        ----------
        pixels : ndarray, shape (height, width), dtype uint8 or uint16
        """
        storage.write_plane(self.location, pixels)


def closest_percentile(percentiles: dict[float, float], p: float) -> float:
    """Intensity at the level of `percentiles` nearest to `p` (the lower one at a tie).

    Raises
    ------
    ValueError
        When `percentiles` is empty.
    """
    if not percentiles:
        raise ValueError("these illumination statistics hold no percentiles")
    level = min(sorted(percentiles), key=lambda key: abs(key - p))
    return percentiles[level]


@dataclass(frozen=True)
class IllumstatsImages:
    """Illumination statistics of a channel in log10 space.

    Attributes
    ----------
    mean, std : ndarray, shape (height, width), dtype float64
        Per-pixel mean and sample standard deviation of log10 intensities
        over the channel's images (log10(0) taken as 0).
    percentiles : dict of float to float
        Intensity percentiles of all pixels of the channel's images pooled
        (level in [0, 100] to intensity).

    Examples
    --------
    Correcting images of a channel (what consumers do)::

        stats = channel.illumstats_file.get().smoothed()
        correct = Correction.from_stats(stats)  # tmlib.illumination, once per channel
        corrected = correct(image)  # uint16 in, uint16 out
        upper = stats.closest_percentile(99.9)
    """

    mean: np.ndarray
    std: np.ndarray
    percentiles: dict[float, float]

    def smoothed(self, sigma: float = 5.0) -> IllumstatsImages:
        """These statistics with Gaussian-smoothed mean and std (as the original read them).

        Parameters
        ----------
        sigma : float
            Kernel standard deviation in pixels (borders reflected).

        Returns
        -------
        IllumstatsImages
            Same percentiles; mean and std shape (height, width), float64.
        """
        return IllumstatsImages(
            mean=illumination.smooth(self.mean, sigma),
            std=illumination.smooth(self.std, sigma),
            percentiles=dict(self.percentiles),
        )

    def closest_percentile(self, p: float) -> float:
        """Intensity at the stored percentile level nearest to `p` (the lower one at a tie).

        Raises
        ------
        ValueError
            When no percentiles are stored.
        """
        return closest_percentile(self.percentiles, p)


class IllumstatsFile(ExperimentModel):
    """Illumination statistics of one channel (HDF5: ``mean``, ``std``, ``percentiles/*``).

    Written by the corilla step; read with :meth:`get` and, as consumers
    should use them, smoothed with :meth:`IllumstatsImages.smoothed`.
    """

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
        """Read the statistics as stored (no smoothing).

        Returns
        -------
        IllumstatsImages
        """
        path = self.location
        return IllumstatsImages(
            mean=storage.read_dataset(path, "mean"),
            std=storage.read_dataset(path, "std"),
            percentiles=self.get_percentiles(),
        )

    def get_percentiles(self) -> dict[float, float]:
        """Only the intensity percentiles (level in [0, 100] to intensity), without
        reading the statistics images."""
        keys = storage.read_dataset(self.location, "percentiles/keys")
        values = storage.read_dataset(self.location, "percentiles/values")
        return {float(k): float(v) for k, v in zip(keys, values, strict=True)}

    def put(self, stats: IllumstatsImages) -> None:
        """Write the statistics atomically (temp file + rename; replaces an earlier file)."""
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

    @property
    def location(self) -> str:
        """The layer's tile container: the index of its blocks, which lie in the directory
        ``<location>.blocks-<token>`` beside it (see :mod:`tmlib.tiles`; removing the
        channel's :attr:`Channel.layers_location` removes both)."""
        return os.path.join(
            self.channel.layers_location, f"layer_t{self.tpoint}_z{self.zplane}.tiles"
        )

    def open_tiles(self) -> TileReader:
        """A reader of the layer's tiles; keep it to read many tiles fast.

        Raises
        ------
        FileNotFoundError
            When the pyramid has not been built.
        """
        from tmlib.tiles import TileReader

        return TileReader(self.location)

    def get_tile(self, level: int, row: int, column: int) -> bytes | None:
        """JPEG bytes of one tile (level 0 = most zoomed out), None for a black tile."""
        with self.open_tiles() as tiles:
            return tiles.get_tile(level, row, column)
