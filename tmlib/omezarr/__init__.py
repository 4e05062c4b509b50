"""OME-Zarr (NGFF) interchange: export experiments as HCS plates, import plates.

:mod:`~tmlib.omezarr.layout` holds what both directions share (versions,
well paths, codecs, pyramid levels); :mod:`~tmlib.omezarr.export` writes an
experiment's plates with labels and feature tables (``tm_export ID ome-zarr``);
:mod:`~tmlib.omezarr.read` reads plates for the ``ome-zarr`` microscope type.

Arrays are written with zarr-python 3 and the NGFF metadata with
ome-zarr-py's writers, the reference implementation that napari-ome-zarr reads
with; feature tables are AnnData groups in the layout of Fractal's tools (ngio).
"""
