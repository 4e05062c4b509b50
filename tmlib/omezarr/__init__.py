"""OME-Zarr (NGFF) interchange: export experiments as HCS plates, import plates.

:mod:`~tmlib.omezarr.layout` holds what both directions share (versions,
well paths, codecs, pyramid levels); :mod:`~tmlib.omezarr.metadata` builds the
NGFF attributes; :mod:`~tmlib.omezarr.export` writes an
experiment's plates with labels and feature tables (``tm_export ID ome-zarr``);
:mod:`~tmlib.omezarr.read` reads plates for the ``ome-zarr`` microscope type.

Arrays are written with zarr-python 3, the NGFF metadata are built from
ome-zarr-models' models of the specification (:mod:`~tmlib.omezarr.metadata`)
and feature tables are AnnData groups in the layout of Fractal's tools (ngio).
"""
