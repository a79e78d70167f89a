"""Relief: sea level and vertical scaling, so Mars (or anything) maps into the model's Earth ramp.

STUB — the API is fixed; the implementation belongs to the CRS/relief work.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Relief:
    sea_level: float = 0.0  # in the layer's vertical units; below it is ocean
    vertical_scale: float = 1.0  # the ramp sees (z - sea_level) * vertical_scale

    def ramp_elevation(self, z: np.ndarray) -> np.ndarray:
        """What the ramp colours: (z - sea_level) * vertical_scale; NaN (no data) stays NaN."""
        raise NotImplementedError

    def sea_mask(self, z: np.ndarray) -> np.ndarray:
        """True where z < sea_level (NaN is not sea)."""
        raise NotImplementedError


def fit_vertical_scale(band, sea_level: float, target_m: float, percentile: float = 99.0) -> float:
    """Scale so the ``percentile`` of land relief (z - sea_level over z > sea_level) lands at ``target_m``.

    ``band`` is a ``gdal.Band``; read in a sampled pass (overviews or a decimated read) with memory bounded
    regardless of raster size. Raises InputError when there is no land above sea level.
    """
    raise NotImplementedError
