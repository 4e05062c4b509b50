"""One channel's image of one site, as stored or corrected and aligned, and as PNG.

What the server's ``image-file`` download and other consumers that want a
single site image use::

    with tm.utils.ExperimentSession(experiment_id) as session:
        site = find_site(session, "plate01", "A01", well_pos_x=0, well_pos_y=1)
        pixels = site_image(session, channel_id, site.id, correct=True, align=True)
    png = encode_png(pixels)

Correction and alignment are those of the workflow steps: the channel's
smoothed illumination statistics (:class:`tmlib.illumination.Correction`) and
the site's shift in the cycle cropped to the region every cycle imaged
(:func:`tmlib.alignment.shift_and_crop`), so the image equals what jterator
analysed.
"""

from __future__ import annotations

import cv2
import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.alignment import shift_and_crop
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.illumination import Correction


def find_site(
    session: Session, plate_name: str, well_name: str, well_pos_x: int, well_pos_y: int
) -> tm.Site:
    """The site at grid position (`well_pos_y`, `well_pos_x`) of a well of a plate.

    Raises
    ------
    NotFoundError
        When the plate, the well or the site does not exist.
    """
    plate_id = session.scalar(sa.select(tm.Plate.id).where(tm.Plate.name == plate_name))
    if plate_id is None:
        raise NotFoundError(f"plate {plate_name!r} does not exist")
    well_id = session.scalar(
        sa.select(tm.Well.id).where(tm.Well.plate_id == plate_id, tm.Well.name == well_name)
    )
    if well_id is None:
        raise NotFoundError(f"plate {plate_name!r} has no well {well_name!r}")
    site = session.scalar(
        sa.select(tm.Site).where(
            tm.Site.well_id == well_id, tm.Site.x == well_pos_x, tm.Site.y == well_pos_y
        )
    )
    if site is None:
        raise NotFoundError(
            f"well {well_name!r} of plate {plate_name!r} has no site at "
            f"well_pos_y={well_pos_y}, well_pos_x={well_pos_x}"
        )
    return site


def find_image_file(
    session: Session,
    channel_id: int,
    site_id: int,
    cycle_index: int = 0,
    tpoint: int = 0,
    zplane: int = 0,
) -> tm.ChannelImageFile:
    """The extracted plane of a channel at a site, cycle, time point and z-plane.

    Raises
    ------
    NotFoundError
        When the channel or the cycle does not exist, or no such plane was
        extracted (run imextract).
    """
    if session.get(tm.Channel, channel_id) is None:
        raise NotFoundError(f"channel {channel_id} does not exist")
    cycle_id = session.scalar(sa.select(tm.Cycle.id).where(tm.Cycle.index == cycle_index))
    if cycle_id is None:
        raise NotFoundError(f"cycle {cycle_index} does not exist")
    image_file = session.scalar(
        sa.select(tm.ChannelImageFile)
        .where(
            tm.ChannelImageFile.channel_id == channel_id,
            tm.ChannelImageFile.site_id == site_id,
            tm.ChannelImageFile.cycle_id == cycle_id,
            tm.ChannelImageFile.tpoint == tpoint,
            tm.ChannelImageFile.zplane == zplane,
        )
        .order_by(tm.ChannelImageFile.id)
        .limit(1)
    )
    if image_file is None:
        raise NotFoundError(
            f"channel {channel_id} has no image of site {site_id} at cycle {cycle_index}, "
            f"tpoint {tpoint}, zplane {zplane}"
        )
    return image_file


def site_image(
    session: Session,
    channel_id: int,
    site_id: int,
    cycle_index: int = 0,
    tpoint: int = 0,
    zplane: int = 0,
    correct: bool = False,
    align: bool = False,
) -> np.ndarray:
    """The pixels of one channel at one site, optionally corrected and aligned.

    Parameters
    ----------
    session : Session
        An experiment session.
    channel_id, site_id : int
    cycle_index, tpoint, zplane : int
        Which plane.
    correct : bool
        Correct for uneven illumination with the channel's smoothed
        statistics (as the workflow steps do).
    align : bool
        Shift by the site's shift in the cycle and crop to the site's
        residues (identity where the align step did not run).

    Returns
    -------
    ndarray, shape (H, W), dtype of the stored plane (uint8 or uint16)
        Aligned: ``(H - top - bottom, W - left - right)`` residues less.

    Raises
    ------
    NotFoundError
        When the plane does not exist (see :func:`find_image_file`).
    InvalidInputError
        When `correct` is asked for but the channel has no illumination
        statistics (run corilla).
    """
    image_file = find_image_file(session, channel_id, site_id, cycle_index, tpoint, zplane)
    stats_file = None
    if correct:
        stats_file = session.scalar(
            sa.select(tm.IllumstatsFile).where(tm.IllumstatsFile.channel_id == channel_id)
        )
        if stats_file is None:
            raise InvalidInputError(
                f"channel {channel_id} has no illumination statistics: run corilla first "
                "or ask for the uncorrected image"
            )
    pixels = image_file.get()
    if stats_file is not None:
        pixels = Correction.from_stats(stats_file.get().smoothed())(pixels)
    if align:
        site = session.get(tm.Site, site_id)
        shift = session.get(tm.SiteShift, (site_id, image_file.cycle_id))
        y, x = (shift.y, shift.x) if shift is not None else (0, 0)
        pixels = shift_and_crop(
            pixels,
            y,
            x,
            site.top_residue,
            site.bottom_residue,
            site.left_residue,
            site.right_residue,
        )
    return np.ascontiguousarray(pixels)


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG of a grey image at its own bit depth (8 or 16 bit).

    Raises
    ------
    ValueError
        For an image that is not 2D uint8 or uint16.
    """
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2D uint8 or uint16 image, got {image.dtype} {image.shape}")
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def site_image_filename(
    experiment_name: str,
    plate_name: str,
    well_name: str,
    well_pos_y: int,
    well_pos_x: int,
    zplane: int,
    tpoint: int,
    channel_name: str,
) -> str:
    """``<exp>_<plate>_<well>_y000_x000_z000_t000_<channel>.png`` (the original's name)."""
    return (
        f"{experiment_name}_{plate_name}_{well_name}_y{well_pos_y:03d}_x{well_pos_x:03d}"
        f"_z{zplane:03d}_t{tpoint:03d}_{channel_name}.png"
    )
