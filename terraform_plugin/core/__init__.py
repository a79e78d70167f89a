"""Terraform DEM engine: elevation -> ramp colours -> pix2pix generator -> satellite-style raster.

Imports no ``qgis``: the Processing algorithm, the trainer, the benchmarks and the tests all drive it directly.
Modules: ``ramp`` (elevation colours), ``schema`` (model metadata), ``model`` (onnxruntime session),
``grid`` (processing grid from the CRS's ellipsoid), ``relief`` (sea level and vertical scale),
``chips`` (chip layout and blend weights), ``source`` (windowed, resampled DEM reading), ``writer``
(GeoTIFF output, atomic), ``preview`` (before/after PNG) and ``pipeline`` (the streamed run).
"""
