"""Before/after preview PNG for reports: the colourised DEM (what the model saw) | the terraformed result.

Both panels are read reduced - the result from the output's overviews, the DEM through a warp (averaging, or bilinear when enlarging) -
so a preview of a 46080 x 23040 mosaic costs a few megabytes. Written with GDAL's PNG driver (no PIL in QGIS).
"""

import os

import numpy as np
from osgeo import gdal

from . import guard
from .errors import OutputError
from .gdalcall import gdal_call
from .writer import temp_name

MAX_PANEL = 1024  # pixels on the longer side of each panel
GAP = 8  # transparent pixels between the panels


def panel_size(width: int, height: int, max_panel: int = MAX_PANEL) -> tuple:
    scale = min(1.0, max_panel / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_reduced_rgba(path, width: int, height: int) -> np.ndarray:
    """(height, width, 4) uint8 of an RGBA raster, read through its overviews."""
    dataset = gdal.Open(path)
    data = dataset.ReadRaster(
        0, 0, dataset.RasterXSize, dataset.RasterYSize, width, height, gdal.GDT_Byte, [1, 2, 3, 4], 4, 4 * width, 1,
        resample_alg=gdal.GRIORA_Average,
    )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 4)


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    h, w, _ = before.shape
    canvas = np.zeros((h, 2 * w + GAP, 4), dtype=np.uint8)
    canvas[:, :w] = before
    canvas[:, w + GAP :] = after
    return canvas


def _remove_temps(temp):
    for leftover in (temp, temp + ".aux.xml"):
        if os.path.exists(leftover):
            os.remove(leftover)


def write_png(path, rgba: np.ndarray) -> str:
    """Write (h, w, 4) uint8 as PNG via a temporary file beside ``path``; returns the temporary path.

    The caller moves it into place (with os.replace) when the whole run succeeds.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OutputError(f"the preview folder does not exist or is not writable: {folder}")
    h, w, _ = rgba.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 4, gdal.GDT_Byte)
    for i in range(4):
        mem.GetRasterBand(i + 1).WriteArray(rgba[..., i])
    mem.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    temp = temp_name(path, ".part.png")
    try:
        gdal_call(OutputError, f"cannot write the preview {path}", gdal.GetDriverByName("PNG").CreateCopy, temp, mem)
    except OutputError as exc:  # libpng says only "Write Error": say when the disk is full, asked before cleaning
        error = guard.disk_full_error(path, str(exc)) or exc
        _remove_temps(temp)
        raise error from None
    except BaseException:
        _remove_temps(temp)
        raise
    # The PNG driver may leave a PAM sidecar; a preview needs none.
    if os.path.exists(temp + ".aux.xml"):
        os.remove(temp + ".aux.xml")
    return temp
