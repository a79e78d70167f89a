"""What the user asks for (``TerraformRequest``) and the one place it is checked (``check_request``).

Every check of a parameter lives here or in the module that owns the thing checked (the band and the raster in
``source``, the CRS and grid size in ``grid``, the overlap against the model's chip in ``chips``, the model in
``model``, what protects the user's data - paths, preview, elevation limit, grid size, disk space - in
``guard``), and runs once, before any long work. The QGIS algorithm maps its parameters onto a request and
lets these checks speak; it does not repeat them.
"""

import math
import os
from dataclasses import dataclass
from typing import Optional

from . import guard
from .chips import DEFAULT_OVERLAP, check_overlap
from .errors import InputError, OutputError
from .grid import check_resolution
from .palette import check_strength
from .relief import Relief
from .writer import BLOCK, check_output_path

NODATA_MODES = ("transparent", "ocean")
OUTPUT_EXTENSIONS = (".tif", ".tiff")
AUTO_LOOK = "auto"  # no look: the model's latitude and elevation decide
# px; about 250 MB of buffers at this width (rows read ahead, accumulator, finished rows), whatever the
# raster's size. Narrower stripes save memory but recompute one chip column more per join.
STRIPE_WIDTH = 8192


@dataclass
class TerraformRequest:
    input_path: str
    output_path: str  # GeoTIFF; written to a temporary file beside it, moved into place when complete
    model_path: str
    band: int = 1
    overlap: int = DEFAULT_OVERLAP  # pixels shared by neighbouring chips
    nodata_mode: str = "transparent"  # transparent: model sees a filled surface, alpha 0; ocean: nodata is sea
    resolution_m: Optional[float] = None  # ground metres per output pixel; None = the model's resolution_m
    sea_level: float = 0.0
    vertical_scale: float = 1.0
    fit_to_earth: bool = False  # choose vertical_scale from the data (overrides vertical_scale)
    preview_path: Optional[str] = None  # before/after PNG (colourised DEM | terraformed)
    batch_size: int = 8
    threads: Optional[int] = None  # onnxruntime intra-op threads; None = all cores
    stripe_width: int = STRIPE_WIDTH  # widest column stripe processed at once (multiple of 256): bounds memory
    allow_huge_grid: bool = False  # opt-in for grids beyond guard.MAX_GRID_PIXELS (otherwise refused as a typo)
    max_abs_elevation: float = guard.DEFAULT_MAX_ABS_ELEVATION  # |z| beyond this is no-data (fill values, garbage)
    # Conditioned (contract-2) models only: terraform as if at this latitude (degrees north) instead of the
    # georeference's; the look to paint with (an id the model declares, or "auto": latitude and elevation decide).
    latitude: Optional[float] = None
    look: str = AUTO_LOOK
    tile_size: int = 0  # px; kept-centre tiles of at most this side (0: the engine's default); contract 2 only
    # Models with guide inputs only: a true-colour raster (any GDAL source: a file, a VRT, a GeoPackage raster, a
    # GDAL WMS/TMS description) whose colours, averaged to kilometres, set the palette.
    guide_path: Optional[str] = None
    # What the output's metadata names the guide by when ``guide_path`` is a rendering of it (a QGIS web layer
    # rendered to a temporary GeoTIFF: the layer's source); None: ``guide_path`` itself.
    guide_label: Optional[str] = None
    # How far the output's colours at the guide's scale move to the guide's (``core.palette``): 1 = the guide's,
    # 0 = the model's own painting, the guide a hint only.
    guide_strength: float = 1.0


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_request(request: TerraformRequest) -> str:
    """Raise InputError/OutputError for anything wrong with ``request`` that needs no file read.

    Returns the absolute output path. Cheap: run it before opening anything.
    """
    check_settings(request)
    output = os.fspath(request.output_path)
    if os.path.splitext(output)[1].lower() not in OUTPUT_EXTENSIONS:
        raise OutputError(f"Terraform DEM writes GeoTIFF: give the output a .tif name, not {output}")
    output = check_output_path(output)
    if request.preview_path:
        check_output_path(request.preview_path)
    # No output or preview over the input or each other, however spelled; the preview is a PNG.
    guard.check_paths(request.input_path, output, request.preview_path)
    check_guide_path(request.guide_path, output, request.preview_path)
    return output


def check_settings(request: TerraformRequest):
    """Raise InputError for a setting that is wrong whatever the files: a mode, a count, a number out of its range.
    The part of ``check_request`` a front end can ask before it knows the paths (the QGIS dialog does)."""
    if request.nodata_mode not in NODATA_MODES:
        raise InputError(f"nodata mode must be one of {', '.join(NODATA_MODES)}, got {request.nodata_mode!r}")
    if not _whole(request.batch_size) or request.batch_size < 1:
        raise InputError(f"batch size must be a whole number >= 1, got {request.batch_size!r}")
    if request.threads is not None and (not _whole(request.threads) or request.threads < 1):
        raise InputError(f"threads must be a whole number >= 1 (or None for all cores), got {request.threads!r}")
    if request.resolution_m is not None:  # None: the model's
        check_resolution(request.resolution_m)
    check_overlap(request.overlap)  # against the model's chip too, once it is known (plan.make_layout)
    width = request.stripe_width
    if not _whole(width) or width < BLOCK or width % BLOCK:
        raise InputError(f"stripe width must be a positive multiple of {BLOCK} pixels, got {width!r}")
    # Sea level always; the vertical scale only when it is used (fit to Earth chooses its own).
    Relief(request.sea_level, 1.0 if request.fit_to_earth else request.vertical_scale)
    guard.check_elevation_limit(request.max_abs_elevation)
    check_latitude(request.latitude)
    check_strength(request.guide_strength)
    if not isinstance(request.look, str):
        raise InputError(f"look must be a look id of the model or \"{AUTO_LOOK}\", got {request.look!r}")
    if not _whole(request.tile_size) or request.tile_size < 0:
        raise InputError(f"tile size must be a whole number of pixels (0 = the default), got {request.tile_size!r}")


def check_guide_path(guide_path, output, preview_path=None):
    """None (no guide) or a non-empty GDAL source; OutputError when the output or preview would overwrite it or a
    file it reads (a guide VRT's sources). Whether GDAL can read it as a guide is ``core.guide``'s to say."""
    if guide_path is None:
        return
    if not isinstance(guide_path, (str, os.PathLike)) or not os.fspath(guide_path).strip():
        raise InputError(f"the guide must be a raster's path or GDAL source (or none), got {guide_path!r}")
    guide = os.fspath(guide_path)
    written = [("output", output, "output"), ("output's sidecar", output + ".aux.xml", "output")]
    if preview_path:
        written.append(("preview", os.fspath(preview_path), "preview"))
    written = [entry for entry in written if os.path.exists(entry[1])]
    if not written or guide.startswith("/vsi") or not os.path.exists(guide):
        return  # new files, a connection string or a web service description: nothing the run could overwrite
    for read in [guide] + guard.files_read_by(guide):
        for what, path, choose in written:
            if guard.same_file(path, read):
                which = "the colour guide" if read == guide else "a file the colour guide reads"
                raise OutputError(f"the {what} {path} is {which} ({read}): writing it would destroy the guide. "
                                  f"Choose another {choose} file.")


def check_latitude(latitude):
    """None (from the georeference) or a latitude in degrees, -90 to 90."""
    if latitude is None:
        return None
    ok = isinstance(latitude, (int, float)) and not isinstance(latitude, bool) and math.isfinite(latitude)
    if not ok or not -90.0 <= latitude <= 90.0:
        raise InputError(f"latitude must be a number of degrees from -90 (south) to 90 (north), got {latitude!r}")
    return float(latitude)
