"""A synthetic experiment with known pixels and objects, for tests of the viewer.

One plate (``plate01``), wells ``A01`` and ``A02`` with one site of
:data:`SITE_SIZE` each, written as generic TIFF files (microscope type
``tiff``) and taken through the real workflow (``tm_add`` and
``tm_workflow submit`` in processes of their own, SQLite) with a pipeline
that thresholds channel ``c0`` and measures its objects.

Channels (uint16):

* ``c0``: :data:`BACKGROUND` everywhere but in the squares of
  :data:`SQUARES`, which are :data:`BRIGHT`;
* ``c1``: a horizontal ramp across each site, ``GRADIENT_START +
  GRADIENT_STEP * column`` (column of the site's image, 0 at its left edge).

The pipeline (``threshold_manual`` at :data:`THRESHOLD` on ``c0``, ``label``,
``register_objects``) finds exactly the squares, as objects of type
:data:`OBJECT_TYPE` with the intensities of both channels and their
morphology as features.

A second, smaller experiment (:func:`build_zstack_site`, only where a test asks
for it) is added to the same installation: one site whose channel ``c0`` has two
z-planes with a square each (:data:`ZSTACK_SQUARES`).

Coordinates here are map pixels at full resolution: x = column and y = row,
both from the top-left corner of the whole mosaic (the server's polygons and
centroids use y = -row, as the original did).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: (height, width) of every site's image
SITE_SIZE = (512, 512)
#: c0 outside the squares
BACKGROUND = 100
#: c0 inside the squares
BRIGHT = 3000
#: c1 = GRADIENT_START + GRADIENT_STEP * column
GRADIENT_START, GRADIENT_STEP = 200, 12
#: the pipeline's threshold on c0 (between BACKGROUND and BRIGHT)
THRESHOLD = 1000
CHANNELS = ("c0", "c1")
OBJECT_TYPE = "Squares"
PLATE, ACQUISITION, EXPERIMENT = "plate01", "acq01", "viewer"
#: the users: alice owns the experiment, bob has no share of it
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
OWNER = "alice"
#: squares per well (one site each): (top row, left column, side) in the site's image;
#: every square has a different side, so its area names it
SQUARES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "A01": ((64, 64, 64), (64, 320, 96), (320, 96, 48), (304, 336, 128)),
    "A02": ((96, 48, 80), (48, 288, 112), (336, 352, 72)),
}


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels: left column `x`, top row `y`, `width` and `height`."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.y + self.height

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the centre (of the pixels' centres, like a centroid)."""
        return self.x + (self.width - 1) / 2, self.y + (self.height - 1) / 2

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x < self.right and self.y <= y < self.bottom

    def shifted(self, x: int, y: int) -> Box:
        return Box(self.x + x, self.y + y, self.width, self.height)


@dataclass(frozen=True)
class Channel:
    """A channel as the server describes it, with its one pyramid layer.

    Tiles are 8-bit JPEG: ``min_intensity`` maps to 0, ``max_intensity`` to 255.
    """

    name: str
    id: str
    layer_id: str
    bit_depth: int
    min_intensity: int
    max_intensity: int

    def display(self, raw: float) -> int:
        """The 8-bit grey value a raw intensity has in the tiles (before JPEG)."""
        lower, upper = self.min_intensity, self.max_intensity
        return int(np.clip(np.rint((raw - lower) * 255 / (upper - lower)), 0, 255))


@dataclass(frozen=True)
class Square:
    """One bright square of c0 and the object the pipeline made of it."""

    name: str  #: ``A01-1`` ... (well and 1-based index in :data:`SQUARES`)
    well: str
    site_box: Box  #: in the site's image
    box: Box  #: in map pixels
    mapobject_id: int
    label: int  #: in the label image of its site
    #: feature name -> value, as measured (``Morphology_Area``, ``Intensity_mean_c0``, ...)
    features: dict[str, float]

    @property
    def area(self) -> int:
        return self.box.width * self.box.height

    @property
    def mean_c1(self) -> float:
        """Mean of c1 over the square (the ramp's value at its middle column)."""
        return GRADIENT_START + GRADIENT_STEP * (self.site_box.x + (self.site_box.width - 1) / 2)


@dataclass
class ViewerSite:
    """The processed synthetic experiment and the live server that serves it.

    Read-only for tests: it is built once per session.
    """

    base_url: str  #: ``http://127.0.0.1:PORT``
    experiment_id: int
    experiment_name: str
    owner: str
    users: dict[str, str]  #: name -> password
    home: Path  #: its TMAPS_HOME (SQLite database and files)
    environ: dict[str, str]  #: TMAPS_* settings of the installation, for subprocesses
    server: object  #: the :class:`helpers.LiveServer`
    width: int  #: of the mosaic at full resolution
    height: int
    image_size: dict[str, int]  #: ``{width, height}`` of the pyramid, as the server says
    max_zoom: int
    tile_size: int
    wells: dict[str, Box]  #: name -> box in map pixels
    sites: dict[str, Box]  #: well name -> box of its one site
    well_ids: dict[str, int]
    site_ids: dict[str, int]
    channels: dict[str, Channel]
    mapobject_types: dict[str, str]  #: name -> id (``Squares`` and the static types)
    features: list[str]  #: names of the features of ``Squares``, in the server's order
    squares: list[Square]
    build_seconds: float
    #: the server's answers used above (``channels``, ``mapobject_types``)
    api: dict[str, object] = field(default_factory=dict)
    object_type: str = OBJECT_TYPE

    def login(self, user: str, password: str | None = None) -> str:
        """An access token of `user` (POST /auth; asserts success)."""
        return self.server.login(user, self.users[user] if password is None else password)

    def square(self, name: str) -> Square:
        return next(s for s in self.squares if s.name == name)

    def squares_of(self, well: str) -> list[Square]:
        return [s for s in self.squares if s.well == well]

    def square_at(self, x: float, y: float) -> Square | None:
        return next((s for s in self.squares if s.box.contains(x, y)), None)

    def raw_intensity(self, channel: str, x: int, y: int) -> int | None:
        """The raw value of `channel` at map pixel (x, y); None between the sites."""
        for well, box in self.sites.items():
            if box.contains(x, y):
                if channel == "c1":
                    return GRADIENT_START + GRADIENT_STEP * (x - box.x)
                inside = any(s.box.contains(x, y) for s in self.squares_of(well))
                return BRIGHT if inside else BACKGROUND
        return None

    def display_value(self, channel: str, x: int, y: int) -> int:
        """The 8-bit grey value of `channel` at map pixel (x, y) in the full-resolution
        tiles (0 between the sites; JPEG may differ by a few grey values, more at edges)."""
        raw = self.raw_intensity(channel, x, y)
        return 0 if raw is None else self.channels[channel].display(raw)


# --------------------------------------------------------------------- images


def site_images(well: str) -> dict[str, np.ndarray]:
    """The images of the site of `well`: channel name -> uint16 array."""
    height, width = SITE_SIZE
    c0 = np.full(SITE_SIZE, BACKGROUND, np.uint16)
    for top, left, side in SQUARES[well]:
        assert top + side <= height and left + side <= width
        c0[top : top + side, left : left + side] = BRIGHT
    ramp = GRADIENT_START + GRADIENT_STEP * np.arange(width)
    c1 = np.broadcast_to(ramp.astype(np.uint16), SITE_SIZE).copy()
    return {"c0": c0, "c1": c1}


def write_images(directory: Path) -> list[Path]:
    """The TIFF files of the plate, named for the ``tiff`` reader (``..._A01_s0_cc0.tif``)."""
    import tifffile

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for well in SQUARES:
        for channel, pixels in site_images(well).items():
            path = directory / f"synthetic_{well}_s0_c{channel}.tif"
            tifffile.imwrite(path, pixels, photometric="minisblack", metadata=None)
            paths.append(path)
    return paths


# ------------------------------------------------------------------- pipeline

#: (module, handles name, {input handle: key or value})
PIPELINE = (
    ("threshold_manual", "threshold_c0", {"image": "c0", "threshold": THRESHOLD}),
    ("label", "label", {"mask": "threshold_c0.mask", "connectivity": 8}),
    ("register_objects", "register_squares", {"mask": "label.label_image"}),
    ("measure_intensity", "measure_intensity_c0",
     {"extract_objects": OBJECT_TYPE, "assign_objects": OBJECT_TYPE, "intensity_image": "c0"}),
    ("measure_intensity", "measure_intensity_c1",
     {"extract_objects": OBJECT_TYPE, "assign_objects": OBJECT_TYPE, "intensity_image": "c1"}),
    ("measure_morphology", "measure_morphology",
     {"extract_objects": OBJECT_TYPE, "assign_objects": OBJECT_TYPE}),
)  # fmt: skip


def write_pipeline(
    location: Path,
    pipeline: tuple = PIPELINE,
    channels: tuple[str, ...] = CHANNELS,
    object_type: str = OBJECT_TYPE,
) -> None:
    """The jterator project (pipeline.yaml and handles/) that finds the squares.

    `pipeline` lists (module, handles name, settings) as :data:`PIPELINE`; the
    objects ``register_objects`` makes are of type `object_type`.
    """
    import yaml

    import jtmodules

    library = Path(jtmodules.__file__).parent
    (location / "handles").mkdir(parents=True, exist_ok=True)
    steps = []
    for module, name, settings in pipeline:
        handles = yaml.safe_load((library / f"{module}.handles.yaml").read_text())
        for handle in handles.get("input") or []:
            if handle["name"] in settings:
                handle["key" if "key" in handle else "value"] = settings[handle["name"]]
        for handle in handles.get("output") or []:
            if "key" in handle:
                registers = module == "register_objects"
                handle["key"] = object_type if registers else f"{name}.{handle['name']}"
        (location / "handles" / f"{name}.handles.yaml").write_text(
            yaml.safe_dump(handles, sort_keys=False)
        )
        steps.append(
            {"source": f"{module}.py", "handles": f"handles/{name}.handles.yaml", "active": True}
        )
    document = {
        "input": {"channels": [{"name": c, "correct": False} for c in channels], "objects": []},
        "pipeline": steps,
        "output": {"objects": [{"name": object_type, "as_polygons": True}]},
    }
    (location / "pipeline.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


# ---------------------------------------------------------------------- build

#: run in the installation's environment: the mosaic and the objects, as JSON
_GEOMETRY_SCRIPT = """
import json, sys
import sqlalchemy as sa
import tmlib.models as tm
from tmlib.mosaic import experiment_mosaic

with tm.utils.ExperimentSession(int(sys.argv[1])) as session:
    mosaic = experiment_mosaic(session)
    def box(b):
        return [b.x, b.y, b.width, b.height]
    wells = {w.name: {"id": w.id, "box": box(mosaic.wells[w.id]),
                      "sites": [{"id": s.id, "box": box(mosaic.sites[s.id])} for s in w.sites]}
             for w in session.scalars(sa.select(tm.Well))}
    kind = session.scalars(sa.select(tm.MapobjectType).where(
        tm.MapobjectType.name == sys.argv[2])).one()
    names = [f.name for f in sorted(kind.features, key=lambda f: f.id)]
    values = {v.mapobject_id: [float(x) for x in v.values]
              for v in session.scalars(sa.select(tm.FeatureValues))}
    objects = []
    rows = session.execute(
        sa.select(tm.Mapobject.id, tm.MapobjectSegmentation.geom_polygon,
                  tm.MapobjectSegmentation.label)
        .join(tm.MapobjectSegmentation)
        .where(tm.Mapobject.mapobject_type_id == kind.id))
    for mapobject_id, polygon, label in rows:
        objects.append({"id": mapobject_id, "bounds": list(polygon.bounds), "label": label,
                        "features": dict(zip(names, values.get(mapobject_id, [])))})
print(json.dumps({"width": mosaic.width, "height": mosaic.height, "wells": wells,
                  "objects": objects}))
"""


def installation_env(root: Path) -> dict[str, str]:
    """The environment of the programs of an installation under `root` (SQLite)."""
    home = root / "tmaps"
    environ = {
        **os.environ,
        "TMAPS_HOME": str(home),
        "TMAPS_DB_URL": f"sqlite:///{home / 'tissuemaps.db'}",
        "TMAPS_CONFIG_FILE": str(root / "no-such.cfg"),
        "TMAPS_CORES": "2",
        "TMAPS_WARM_START": "0",
    }
    environ.pop("TMAPS_STORAGE_HOME", None)
    return environ


def register_tiff_experiment(
    environ: dict[str, str], name: str, source: Path, owner: str = OWNER
) -> int:
    """A new experiment of `owner` (generic TIFF, 96 wells) with plate :data:`PLATE` and
    acquisition :data:`ACQUISITION` holding the files of `source` (``tm_add``); its id."""
    experiment_id = int(
        run_program(environ, "tm_add", "experiment", "-e", name, "-u", owner,
                    "--microscope-type", "tiff", "--plate-format", "96").strip()
    )  # fmt: skip
    run_program(environ, "tm_add", "plate", "-e", experiment_id, "-p", PLATE)
    run_program(environ, "tm_add", "acquisition", "-e", experiment_id, "-p", PLATE,
                "-a", ACQUISITION)  # fmt: skip
    run_program(environ, "tm_add", "files", "-q", "-e", experiment_id, "-p", PLATE,
                "-a", ACQUISITION, "-s", source)  # fmt: skip
    return experiment_id


@dataclass
class Installation:
    """A live tm_server on an installation of its own (SQLite) with some users."""

    base_url: str
    server: object
    home: Path
    environ: dict[str, str]
    users: dict[str, str]

    def login(self, user: str) -> str:
        return self.server.login(user, self.users[user])

    def call(self, method: str, path: str, user: str | None = None, **kwargs) -> object:
        """A request to the API as `user` (default: the first user), which must succeed;
        the answer's JSON."""
        token = self.login(user or next(iter(self.users)))
        response = self.server.call(method, path, token, **kwargs)
        assert response.status_code == 200, (method, path, response.text)
        return response.json()


@contextlib.contextmanager
def served_installation(root: Path, users: dict[str, str]) -> Iterator[Installation]:
    """A new installation under `root` with `users` (name: password) and nothing else,
    served by a live tm_server until the context ends."""
    from helpers import live_server

    environ = installation_env(root)
    home = Path(environ["TMAPS_HOME"])
    home.mkdir(parents=True)
    for name, password in users.items():
        run_program(environ, "tm_add", "user", "-n", name, "-p", password,
                    "-e", f"{name}@example.org")  # fmt: skip
    settings = {k: v for k, v in environ.items() if k.startswith("TMAPS_")}
    with live_server(extra_env=settings, unset=("TMAPS_STORAGE_HOME",)) as server:
        yield Installation(server.url, server, home, environ, dict(users))


def simulate_plate(directory: Path, *options: str) -> Path:
    """A plate written by ``tm_simulate plate`` with `options` into `directory`."""
    program = Path(sys.executable).parent / "tm_simulate"
    subprocess.run([str(program), "plate", str(directory), *options], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    return directory


def run_program(environ: dict[str, str], program: str, *args: object) -> str:
    """Run an installed program of this virtualenv to its end; its stdout."""
    executable = sys.executable if program == "python" else Path(sys.executable).parent / program
    result = subprocess.run(
        [str(executable), *map(str, args)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (program, args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def process(root: Path) -> tuple[int, dict[str, str], dict]:
    """Write the plate under `root`, add users and experiment, run the workflow.

    Returns the experiment id, the installation's environment and its geometry
    (mosaic size, wells and sites, objects with their bounds and features).
    """
    environ = installation_env(root)
    home = Path(environ["TMAPS_HOME"])
    home.mkdir(parents=True)
    source = root / "microscope" / PLATE
    write_images(source)
    for name, password in USERS.items():
        run_program(environ, "tm_add", "user", "-n", name, "-p", password,
                    "-e", f"{name}@example.org")  # fmt: skip
    experiment_id = register_tiff_experiment(environ, EXPERIMENT, source)
    location = home / "experiments" / f"experiment_{experiment_id}"
    assert location.is_dir(), f"no experiment directory at {location}"
    write_pipeline(location / "workflow" / "jterator")
    run_program(environ, "tm_workflow", experiment_id, "submit", "--interval", "0.2")
    geometry = json.loads(
        run_program(environ, "python", "-c", _GEOMETRY_SCRIPT, experiment_id, OBJECT_TYPE)
    )
    return experiment_id, environ, geometry


def match_squares(geometry: dict) -> tuple[dict[str, Box], dict[str, Box], list[Square]]:
    """Boxes of wells and sites, and the squares with the objects found in them.

    Raises AssertionError unless every square is exactly one object whose outline
    runs through its border pixels, and there are no other objects.
    """
    wells, sites, squares = {}, {}, []
    objects = {o["id"]: o for o in geometry["objects"]}
    for well, designed in SQUARES.items():
        wells[well] = Box(*geometry["wells"][well]["box"])
        (site,) = geometry["wells"][well]["sites"]
        sites[well] = site_box = Box(*site["box"])
        assert (site_box.height, site_box.width) == SITE_SIZE, site_box
        for index, (top, left, side) in enumerate(designed, 1):
            box = Box(left, top, side, side).shifted(site_box.x, site_box.y)
            # outlines run through the centres of the border pixels; y = -row
            expected = [box.x, -(box.bottom - 1), box.right - 1, -box.y]
            found = [i for i, o in objects.items() if o["bounds"] == expected]
            assert len(found) == 1, (well, index, expected, geometry["objects"])
            found_object = objects.pop(found[0])
            squares.append(
                Square(
                    name=f"{well}-{index}",
                    well=well,
                    site_box=Box(left, top, side, side),
                    box=box,
                    mapobject_id=found[0],
                    label=found_object["label"],
                    features=found_object["features"],
                )
            )
    assert not objects, f"objects where there is no square: {list(objects.values())}"
    return wells, sites, squares


def build_viewer_site(root: Path, stack) -> ViewerSite:
    """Build the experiment under `root` and serve it; `stack` (an ExitStack) stops the
    server."""
    from helpers import live_server

    from tmlib.pyramid import TILE_SIZE

    started = time.monotonic()
    experiment_id, environ, geometry = process(root)
    wells, sites, squares = match_squares(geometry)
    settings = {k: v for k, v in environ.items() if k.startswith("TMAPS_")}
    server = stack.enter_context(live_server(extra_env=settings, unset=("TMAPS_STORAGE_HOME",)))
    token = server.login(OWNER, USERS[OWNER])
    answers = {}
    for what in ("channels", "mapobject_types"):
        response = server.call("GET", f"/api/experiments/{experiment_id}/{what}", token)
        assert response.status_code == 200, response.text
        answers[what] = response.json()["data"]
    channels = {}
    for channel in answers["channels"]:
        (layer,) = channel["layers"]
        channels[channel["name"]] = Channel(
            name=channel["name"],
            id=channel["id"],
            layer_id=layer["id"],
            bit_depth=channel["bit_depth"],
            min_intensity=int(layer["min_intensity"]),
            max_intensity=int(layer["max_intensity"]),
        )
    assert sorted(channels) == sorted(CHANNELS), channels
    kinds = {k["name"]: k for k in answers["mapobject_types"]}
    layer = answers["channels"][0]["layers"][0]
    return ViewerSite(
        base_url=server.url,
        experiment_id=experiment_id,
        experiment_name=EXPERIMENT,
        owner=OWNER,
        users=dict(USERS),
        home=Path(environ["TMAPS_HOME"]),
        environ=settings,
        server=server,
        width=geometry["width"],
        height=geometry["height"],
        image_size=layer["image_size"],
        max_zoom=layer["max_zoom"],
        tile_size=TILE_SIZE,
        wells=wells,
        sites=sites,
        well_ids={w: geometry["wells"][w]["id"] for w in wells},
        site_ids={w: geometry["wells"][w]["sites"][0]["id"] for w in wells},
        channels=channels,
        mapobject_types={name: k["id"] for name, k in kinds.items()},
        features=[f["name"] for f in kinds[OBJECT_TYPE]["features"]],
        squares=squares,
        build_seconds=time.monotonic() - started,
        api=answers,
    )


# -------------------------------------------------------------------- z-stack

#: the z-stack experiment: one well (A01), one site of this size, channel c0 only
ZSTACK_EXPERIMENT = "zstack"
ZSTACK_SITE_SIZE = (256, 256)
#: per z-plane (index = zplane): the square (top row, left column, side) where c0 is BRIGHT
#: on that plane only (BACKGROUND elsewhere); the squares do not overlap
ZSTACK_SQUARES = ((32, 40, 64), (136, 120, 96))
#: objects uploaded through the API, one layer per z-plane: label 1 is that plane's square
PLANE_TYPE = "PlaneSquares"

#: jterator's modules take 2D images: project the stack (maximum), then as :data:`PIPELINE`
ZSTACK_PIPELINE = (
    ("project", "project_c0", {"image": "c0", "method": "max"}),
    ("threshold_manual", "threshold_c0",
     {"image": "project_c0.projected_image", "threshold": THRESHOLD}),
    ("label", "label", {"mask": "threshold_c0.mask", "connectivity": 8}),
    ("register_objects", "register_squares", {"mask": "label.label_image"}),
)  # fmt: skip


@dataclass
class ZStackSite:
    """A second experiment of the viewer site's installation (same server and users), whose
    one channel ``c0`` has two z-planes with a bright square each.

    Objects: :data:`OBJECT_TYPE`, found by the workflow in the maximum projection (both
    squares, in the layers jterator makes), and :data:`PLANE_TYPE`, one label image per
    z-plane uploaded through the API (each plane's square in that plane's layer).
    """

    base_url: str
    experiment_id: int
    owner: str
    users: dict[str, str]
    server: object
    width: int  #: of the mosaic at full resolution
    height: int
    max_zoom: int
    site: Box  #: the one site, in map pixels
    squares: tuple[Box, ...]  #: per z-plane, in map pixels
    #: zplane -> id of c0's channel layer
    channel_layers: dict[int, str]
    #: type name -> [(tpoint, zplane, layer id)] as the server lists them
    segmentation_layers: dict[str, list[tuple[int | None, int | None, str]]]
    mapobject_types: dict[str, str]  #: name -> id
    #: zplane -> ``{label: box}`` of OBJECT_TYPE's objects, for each z-plane it has a layer of
    found_objects: dict[int, dict[int, Box]]
    build_seconds: float

    def login(self, user: str, password: str | None = None) -> str:
        return self.server.login(user, self.users[user] if password is None else password)


def zstack_images() -> list[np.ndarray]:
    """c0 of the one site, per z-plane (uint16)."""
    planes = []
    for top, left, side in ZSTACK_SQUARES:
        plane = np.full(ZSTACK_SITE_SIZE, BACKGROUND, np.uint16)
        plane[top : top + side, left : left + side] = BRIGHT
        planes.append(plane)
    return planes


def _label_boxes(labels: np.ndarray, origin: Box) -> dict[int, Box]:
    """The bounding box (map pixels) of each label of a site's label image."""
    boxes = {}
    for label in (int(v) for v in np.unique(labels) if v):
        rows, columns = np.nonzero(labels == label)
        boxes[label] = Box(
            origin.x + int(columns.min()),
            origin.y + int(rows.min()),
            int(columns.max() - columns.min()) + 1,
            int(rows.max() - rows.min()) + 1,
        )
    return boxes


def build_zstack_site(site: ViewerSite, root: Path) -> ZStackSite:
    """Add the z-stack experiment to `site`'s installation, process it and upload
    :data:`PLANE_TYPE`'s label images (the server keeps running throughout)."""
    import base64
    import io

    import tifffile

    started = time.monotonic()
    environ = {**os.environ, **site.environ}
    environ.pop("TMAPS_STORAGE_HOME", None)
    source = root / "microscope" / ZSTACK_EXPERIMENT
    source.mkdir(parents=True)
    for z, pixels in enumerate(zstack_images()):
        path = source / f"zstack_A01_s0_cc0_z{z}.tif"
        tifffile.imwrite(path, pixels, photometric="minisblack", metadata=None)
    experiment_id = register_tiff_experiment(environ, ZSTACK_EXPERIMENT, source)
    location = site.home / "experiments" / f"experiment_{experiment_id}"
    write_pipeline(location / "workflow" / "jterator", ZSTACK_PIPELINE, ("c0",), OBJECT_TYPE)
    run_program(environ, "tm_workflow", experiment_id, "submit", "--interval", "0.2")

    server, token = site.server, site.login(OWNER)
    base = f"/api/experiments/{experiment_id}"

    def get(path: str, **params) -> object:
        response = server.call("GET", f"{base}{path}", token, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()["data"]

    layout = get("/layout")
    (site_box,) = (Box(*b) for b in layout["sites"]["box"])
    assert (site_box.height, site_box.width) == ZSTACK_SITE_SIZE, site_box
    squares = tuple(Box(left, top, side, side).shifted(site_box.x, site_box.y)
                    for top, left, side in ZSTACK_SQUARES)  # fmt: skip
    where = {"plate_name": PLATE, "well_name": "A01", "well_pos_x": 0, "well_pos_y": 0}
    # PLANE_TYPE: each plane's square, in that plane's layer
    response = server.call("POST", f"{base}/mapobject_types", token, json={"name": PLANE_TYPE})
    assert response.status_code in (200, 201), response.text
    plane_type = response.json()["data"]["id"]
    for z, (top, left, side) in enumerate(ZSTACK_SQUARES):
        labels = np.zeros(ZSTACK_SITE_SIZE, np.int32)
        labels[top : top + side, left : left + side] = 1
        buffer = io.BytesIO()
        np.savez_compressed(buffer, segmentation=labels)
        body = {**where, "tpoint": 0, "zplane": z,
                "npz_file": base64.b64encode(buffer.getvalue()).decode()}  # fmt: skip
        response = server.call(
            "POST", f"{base}/mapobject_types/{plane_type}/segmentations", token, json=body
        )
        assert response.status_code == 200, response.text

    channels = get("/channels")
    (c0,) = channels
    assert c0["name"] == "c0", c0
    kinds = {k["name"]: k for k in get("/mapobject_types")}
    found = {}
    for squares_layer in kinds[OBJECT_TYPE]["layers"]:  # the planes jterator made layers for
        labels = get(f"/mapobject_types/{kinds[OBJECT_TYPE]['id']}/segmentations", **where,
                     tpoint=squares_layer["tpoint"], zplane=squares_layer["zplane"])  # fmt: skip
        found[squares_layer["zplane"]] = _label_boxes(np.asarray(labels), site_box)
        # segmented in the maximum projection: the squares of all planes
        assert set(found[squares_layer["zplane"]].values()) == set(squares), found
    for z, square in enumerate(squares):
        labels = get(f"/mapobject_types/{plane_type}/segmentations", **where, tpoint=0, zplane=z)
        assert _label_boxes(np.asarray(labels), site_box) == {1: square}, (z, square)
    layer = c0["layers"][0]
    return ZStackSite(
        base_url=server.url,
        experiment_id=experiment_id,
        owner=OWNER,
        users=dict(USERS),
        server=server,
        width=layer["image_size"]["width"],
        height=layer["image_size"]["height"],
        max_zoom=layer["max_zoom"],
        site=site_box,
        squares=squares,
        channel_layers={lay["zplane"]: lay["id"] for lay in c0["layers"]},
        segmentation_layers={
            name: [(lay["tpoint"], lay["zplane"], lay["id"]) for lay in kind["layers"]]
            for name, kind in kinds.items()
        },
        mapobject_types={name: kind["id"] for name, kind in kinds.items()},
        found_objects=found,
        build_seconds=time.monotonic() - started,
    )
