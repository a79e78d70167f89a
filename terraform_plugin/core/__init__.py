"""Terraform DEM engine: elevation -> ramp colours -> pix2pix generator -> satellite-style raster.

Imports no ``qgis``: the Processing algorithm, the trainer, the benchmarks and the tests all drive it directly.
Modules: ``ramp`` and ``turbo`` (elevation colours), ``schema`` and ``onnxmeta`` (model metadata), ``model``
(onnxruntime session), ``grid`` (processing grid from the CRS's ellipsoid), ``relief`` (sea level and vertical
scale), ``chips`` (chip and tile layout, blend weights), ``source`` and ``sampling`` (windowed, resampled DEM
reading), ``conditioning``, ``latitude`` and ``guide`` (a contract-2 model's planes: latitude, look, colour
guide), ``palette`` (a guided run's colours held to the guide's), ``writer`` and ``overviews`` (GeoTIFF output,
atomic, overviews streamed), ``preview`` (before/after PNG), ``gdalcall`` (GDAL failures as clear errors),
``errors``, ``guard`` (what protects the user's data: paths, grid size, disk space, temporaries, non-physical
elevations), ``parts`` (column stripes computed apart and assembled), and the streamed run: ``request`` (what is
asked, checked once), ``plan`` (what the stages share), ``chiprows`` (read, fill, colourise), ``mosaic`` (infer,
blend or keep centres), ``blockrows`` (rows -> TIFF block rows), ``workers`` (reader and writer threads),
``profile`` (per-stage counters) and ``pipeline`` (``run``: the recipe); ``version`` (the plugin's version).
"""
