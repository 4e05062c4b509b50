"""Open an OME-Zarr HCS plate (NGFF 0.4 or 0.5) in napari and save a screenshot.

Usage (under a display, e.g. ``xvfb-run``; see README.md next to this file)::

    python screenshot.py PLATE.zarr OUT.png [--labels] [--field B/03/0] [--fit-wells]

The plate (or, with ``--field``, one field image ``PLATE.zarr/B/03/0``) is
opened with the ``napari-ome-zarr`` reader, which makes one image layer per
channel (colour and contrast from the ``omero`` metadata) plus one labels layer
per label image.  Without ``--labels`` labels layers are removed; with it they
are made visible (field labels load hidden; ``--contour N`` draws outlines) and
at least one must exist.  Contrast limits are (re)set from the
``omero`` channel windows where given.  The whole napari window is saved and
one JSON line describing the layers is printed last on stdout.
"""

import argparse
import json
import sys
import time

import napari
import zarr
from qtpy.QtWidgets import QApplication


def omero_windows(path):
    """Return the ``omero`` window (start, end) or None of each channel shown."""
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    attrs = attrs.get("ome", attrs)
    if "plate" in attrs:  # the reader shows the first field of each well
        well = group[sorted(w["path"] for w in attrs["plate"]["wells"])[0]]
        well_attrs = dict(well.attrs)
        field = well_attrs.get("ome", well_attrs)["well"]["images"][0]["path"]
        attrs = dict(well[field].attrs)
        attrs = attrs.get("ome", attrs)
    windows = []
    for ch in attrs.get("omero", {}).get("channels", []):
        win = ch.get("window") or {}
        ok = win.get("start") is not None and win.get("end") is not None
        windows.append((win["start"], win["end"]) if ok else None)
    return windows


def wells_extent(path):
    """(top, left, bottom, right) in level-0 pixels of the wells that hold images."""
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    wells = attrs.get("ome", attrs)["plate"]["wells"]
    well = group[wells[0]["path"]]
    well_attrs = dict(well.attrs)
    field = well[well_attrs.get("ome", well_attrs)["well"]["images"][0]["path"]]
    height, width = field["0"].shape[-2:]
    rows = [w["rowIndex"] for w in wells]
    columns = [w["columnIndex"] for w in wells]
    return (
        min(rows) * height,
        min(columns) * width,
        (max(rows) + 1) * height,
        (max(columns) + 1) * width,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plate")
    ap.add_argument("out")
    ap.add_argument("--labels", action="store_true", help="keep labels layers (required)")
    ap.add_argument("--field", help="open this field image, e.g. B/03/0, not the plate")
    ap.add_argument("--contour", type=int, default=0, help="draw labels as N-px outlines")
    ap.add_argument(
        "--fit-wells",
        action="store_true",
        help="zoom to the wells that hold images, not the whole plate format",
    )
    ap.add_argument("--size", default="1400x900", help="window size WxH")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for data")
    args = ap.parse_args(argv)

    path = args.plate.rstrip("/") + ("/" + args.field.strip("/") if args.field else "")
    viewer = napari.Viewer(show=True, title=path)
    viewer.window.resize(*map(int, args.size.split("x")))
    viewer.open(path, plugin="napari-ome-zarr")
    if not viewer.layers:
        sys.exit(f"napari-ome-zarr found no layers in {path}")

    for layer in [lyr for lyr in viewer.layers if isinstance(lyr, napari.layers.Labels)]:
        if not args.labels:
            viewer.layers.remove(layer)
        else:  # field labels are loaded hidden; plate labels visible
            layer.visible = True
            layer.contour = args.contour
    if args.labels and not any(isinstance(lyr, napari.layers.Labels) for lyr in viewer.layers):
        sys.exit(f"no labels layer in {path}; try --field ROW/COL/FIELD")

    images = [lyr for lyr in viewer.layers if isinstance(lyr, napari.layers.Image)]
    windows = omero_windows(path)
    if len(windows) == len(images):  # one layer per channel, in channel order
        for layer, lims in zip(images, windows, strict=True):
            if lims is not None and lims[1] > lims[0]:
                layer.contrast_limits = lims

    viewer.reset_view()  # zoom to fit
    if args.fit_wells and not args.field:
        top, left, bottom, right = wells_extent(path)
        full_height, full_width = images[0].data.shape[-2:]
        scale_y, scale_x = images[0].scale[-2:]  # world units: the pixel size
        viewer.camera.center = ((top + bottom) / 2 * scale_y, (left + right) / 2 * scale_x)
        viewer.camera.zoom *= 0.95 * min(full_height / (bottom - top), full_width / (right - left))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not all(lyr.loaded for lyr in viewer.layers):
        QApplication.processEvents()
        time.sleep(0.05)
    for _ in range(20):  # let the canvas draw
        QApplication.processEvents()
        time.sleep(0.05)

    viewer.screenshot(args.out, canvas_only=False)
    info = [
        {
            "name": lyr.name,
            "type": type(lyr).__name__,
            "colormap": getattr(getattr(lyr, "colormap", None), "name", None),
            "contrast_limits": [float(v) for v in lyr.contrast_limits]
            if hasattr(lyr, "contrast_limits")
            else None,
            "shape": [int(n) for n in lyr.data.shape],
            "visible": bool(lyr.visible),
            "loaded": bool(lyr.loaded),
        }
        for lyr in viewer.layers
    ]
    print(json.dumps({"path": path, "screenshot": args.out, "layers": info}), flush=True)
    viewer.close()


if __name__ == "__main__":
    main()
