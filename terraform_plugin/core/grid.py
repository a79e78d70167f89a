"""The processing grid: the DEM's own CRS, pixels of the model's ground resolution.

STUB — the API is fixed; the implementation belongs to the CRS/relief work.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Grid:
    width: int
    height: int
    geotransform: tuple  # GDAL order: (x0, xres, 0, y0, 0, -yres), north-up
    wkt: str  # the input's CRS, exactly as the input declares it

    @property
    def pixel_size(self) -> tuple:
        """(xres, yres) in CRS units, both positive."""
        return (self.geotransform[1], -self.geotransform[5])


def pixel_size_in_crs_units(srs, latitude_deg: float, resolution_m: float) -> tuple:
    """Ground metres -> (xres, yres) in the units of ``srs`` (an ``osr.SpatialReference``).

    Projected: divide by the linear unit. Geographic: degrees from the CRS's own ellipsoid (semi-major axis,
    flattening) at ``latitude_deg`` — Earth, Mars, anything; never an Earth constant.
    """
    raise NotImplementedError


def processing_grid(dataset, resolution_m: float) -> Grid:
    """Grid covering the extent of the GDAL ``dataset`` at ``resolution_m`` ground metres per pixel.

    Raises InputError when the dataset has no CRS or a rotated geotransform.
    """
    raise NotImplementedError
