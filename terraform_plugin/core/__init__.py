"""Terraform DEM engine: elevation -> ramp colours -> pix2pix generator -> satellite-style raster.

Imports no ``qgis``: the Processing algorithm, the trainer, the benchmarks and the tests all drive it directly.
Modules: ``ramp`` (elevation colours), ``schema`` (model metadata), ``model`` (onnxruntime session),
``grid`` (processing grid from the CRS's ellipsoid), ``relief`` (sea level and vertical scale),
``chips`` (chip layout and blend weights), ``source`` (windowed, resampled DEM reading), ``writer``
(GeoTIFF output, atomic), ``preview`` (before/after PNG), ``gdalcall`` (GDAL failures as clear errors),
``guard`` (what protects the user's data: paths, grid size, disk space, temporaries, non-physical elevations), and the
streamed run: ``request`` (what is asked, checked once), ``plan`` (what the stages share), ``chiprows`` (read,
fill, colourise), ``mosaic`` (infer, blend), ``blockrows`` (rows -> TIFF block rows), ``workers`` (reader and
writer threads), ``profile`` (per-stage counters) and ``pipeline`` (``run``: the recipe).
"""
