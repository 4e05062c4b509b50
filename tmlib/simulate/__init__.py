"""Synthetic microscopy plates for tests and benchmarks (``tm_simulate``).

:mod:`tmlib.simulate.cells` draws and renders the cells of one site (pure
numpy), :mod:`tmlib.simulate.plate` lays out a plate and drives a vendor
writer, and :mod:`tmlib.simulate.cellvoyager` is the Yokogawa CellVoyager
writer (:mod:`~tmlib.simulate.visiview`, :mod:`~tmlib.simulate.metamorph` and
:mod:`~tmlib.simulate.tiff` write the other layouts).  :mod:`tmlib.simulate.multiplex`
writes a multiplexing experiment: one plate directory per cycle with known
per-site shifts (``tm_simulate plate --cycles N``).  Importing this
package registers all built-in writers in :data:`tmlib.simulate.plate.WRITERS`.
"""

from tmlib.simulate.cells import (
    CellPopulation,
    NoiseBank,
    SiteRenderer,
    SiteRendering,
    channel_signal,
    default_nucleus_radius,
    defocus,
    expose,
    move_cells,
    place_cells,
    render_site,
    spot_field,
    texture_tile,
    vignetting_field,
)
from tmlib.simulate.cellvoyager import CellVoyagerWriter, image_filename
from tmlib.simulate.metamorph import MetaMorphWriter
from tmlib.simulate.multiplex import (
    check_cycles,
    cycle_directory,
    cycle_shifts,
    read_shifts,
    simulate_cycles,
)
from tmlib.simulate.plate import (
    GROUND_TRUTH_DIR,
    PLATE_FORMATS,
    WRITERS,
    InvalidPlateSpecError,
    OutputDirectoryNotEmptyError,
    PlaneInfo,
    PlateSpec,
    PlateWriter,
    SimulationSummary,
    check_plate,
    get_writer,
    ground_truth_label_path,
    register_writer,
    simulate_plate,
    site_grid,
    site_position,
    well_names,
)
from tmlib.simulate.tiff import TiffWriter
from tmlib.simulate.visiview import VisiViewWriter

__all__ = [
    "GROUND_TRUTH_DIR",
    "PLATE_FORMATS",
    "WRITERS",
    "CellPopulation",
    "CellVoyagerWriter",
    "InvalidPlateSpecError",
    "MetaMorphWriter",
    "NoiseBank",
    "OutputDirectoryNotEmptyError",
    "PlaneInfo",
    "PlateSpec",
    "PlateWriter",
    "SimulationSummary",
    "SiteRenderer",
    "SiteRendering",
    "TiffWriter",
    "VisiViewWriter",
    "channel_signal",
    "check_cycles",
    "check_plate",
    "cycle_directory",
    "cycle_shifts",
    "default_nucleus_radius",
    "defocus",
    "expose",
    "get_writer",
    "ground_truth_label_path",
    "image_filename",
    "move_cells",
    "place_cells",
    "read_shifts",
    "register_writer",
    "render_site",
    "simulate_cycles",
    "simulate_plate",
    "site_grid",
    "site_position",
    "spot_field",
    "texture_tile",
    "vignetting_field",
    "well_names",
]
