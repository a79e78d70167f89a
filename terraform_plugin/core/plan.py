"""The plan: everything the stages share, fixed before the first chip - grid, chip layout, stripes, relief,
the model's ramp and value ranges, batch size and no-data mode, a conditioned model's planes and a guided run's
palette hold.

Memory does not grow with the raster: the grid is processed in column stripes at most ``stripe_width`` wide
(whole 256 px TIFF tiles), each top to bottom, holding one chip row of blend accumulators plus less than two
256-row blocks of output. The chip column that straddles a stripe join is simply computed again for the next
stripe (about 2 % more chips per 8192 px), because keeping it would mean keeping a whole column of
predictions. A tiling-independent model's stripes are whole columns of its kept-centre tiles instead, joined
where one centre ends: nothing is computed twice. The chip layout is global, so the mosaic is identical with or
without stripes, and any stripe can be computed on its own (another process, another machine) from the plan
alone.
"""

import math
import os
from dataclasses import dataclass
from typing import Optional

from . import guard, source
from .blockrows import BLOCK
from .chips import ChipLayout, margin_for
from .conditioning import Conditioning, make_conditioning
from .errors import InputError
from .grid import SCALE_TOLERANCE, Grid, processing_grid
from .palette import PaletteHold, held_cell_px, held_margin
from .ramp import Ramp
from .relief import Relief, fit_target_m, fit_vertical_scale
from .request import TerraformRequest


@dataclass(frozen=True)
class Stripe:
    x0: int  # grid columns [x0, x1) this stripe writes
    x1: int
    columns: range  # chip columns it computes
    ax0: int  # grid column of its accumulator's first pixel
    width: int  # accumulator width


# Kept-centre tiles of a tiling-independent model: by default the smallest centre - whole TIFF blocks, so that
# stripe joins fall between centres - whose tile computes at most this many pixels per output pixel, the rest
# being the margins every tile computes and drops ((centre + 2 margin)² / centre²; blended 256 px chips at overlap
# 64: 1.78). Larger tiles compute less in their margins but hold more memory. A 96 px margin gets 1280 px
# centres (1472 px tiles, 1.32), the 128 px of a 5-level generator with R = 128 1792 px (2048 px tiles, 1.31):
# peak memory in bench/README.md's tiles section.
MAX_COMPUTED_PER_OUTPUT_PX = 1.35
# Kept-centre tiles are tall (1472 or 2048 rows at the default): a stripe of them holds at most about this many
# pixels per tile row (the reader's chip rows in flight, the accumulator), where a blended 8192 px stripe holds 2.2 M.
TILE_ROW_PIXELS = 4 << 20


def plan_stripes(layout: ChipLayout, stripe_width: int) -> tuple:
    """Column stripes covering the grid, with the chip columns each needs. Blended chips: stripes of whole tiles
    ``stripe_width`` wide, the chip column across a join computed for both. Kept centres: whole tile columns,
    as many as fit in ``stripe_width`` and in ``TILE_ROW_PIXELS`` a tile row (at least one), joined where one
    centre ends and the next begins: nothing is computed twice."""
    if layout.blend:
        bounds = [(x0, min(layout.width, x0 + stripe_width)) for x0 in range(0, layout.width, stripe_width)]
    else:
        step = layout.stride_x
        fit = (TILE_ROW_PIXELS // layout.tile_h - layout.lap) // step
        per_stripe = max(1, min(stripe_width // step, fit))
        joins = range(0, len(layout.xs), per_stripe)
        bounds = [(c * step, min(layout.width, (c + per_stripe) * step)) for c in joins]
    stripes = []
    for x0, x1 in bounds:
        columns = layout.columns_touching(x0, x1)
        ax0 = int(layout.xs[columns.start])
        stripes.append(Stripe(x0, x1, columns, ax0, int(layout.xs[columns.stop - 1]) + layout.tile_w - ax0))
    return tuple(stripes)


@dataclass(frozen=True, eq=False)
class Plan:
    request: TerraformRequest
    output_path: str  # absolute
    grid: Grid
    layout: ChipLayout
    stripes: tuple
    relief: Relief  # sea level and the vertical scale actually used
    ramp: Ramp  # the model's
    resolution_m: float
    input_scaling: tuple  # (scale, offset): model input = RGB * scale + offset
    output_scaling: tuple  # (scale, offset): RGB = model output * scale + offset
    conditioning: Optional[Conditioning] = None  # a conditioned model's planes (latitude, look, guide)
    palette: Optional[PaletteHold] = None  # a guided run's cell colours held to the guide's (core.palette)

    @property
    def batch_size(self) -> int:
        """Chips per model call: the request's batch of 256 px chips, in pixels (a tall tile is a batch alone)."""
        layout = self.layout
        if layout.blend:
            return self.request.batch_size
        return max(1, self.request.batch_size * 256 * 256 // (layout.tile_w * layout.tile_h))

    @property
    def transparent(self) -> bool:
        """No-data is filled for the model and made transparent (else it is sea, opaque)."""
        return self.request.nodata_mode == "transparent"

    @property
    def chip_runs(self) -> int:
        """Chips the model runs: the layout's, plus the columns computed again at stripe joins."""
        return len(self.layout.ys) * sum(len(s.columns) for s in self.stripes)

    def describe(self, dataset) -> list:
        """Log lines: input, grid, chips."""
        layout, grid = self.layout, self.grid
        xres, yres = grid.pixel_size
        name = os.path.basename(os.fspath(self.request.input_path))
        many = len(self.stripes) > 1
        return [
            f"Input {name}: {dataset.RasterXSize} x {dataset.RasterYSize} px; processing grid {grid.width} x "
            f"{grid.height} px of {xres:.6g} x {yres:.6g} CRS units ({self.resolution_m:g} m)",
            layout.describe()
            + (f", in {len(self.stripes)} column stripes ({self.chip_runs} chip runs)" if many and layout.blend else "")
            + (f", in {len(self.stripes)} column stripes" if many and not layout.blend else "")
            + f", batches of {self.batch_size}, nodata {self.request.nodata_mode}",
        ]


def plan_grid(request: TerraformRequest, output_path: str, dataset, resolution_m: float) -> Grid:
    """The processing grid at ``resolution_m``, refused when absurd (a likely mistyped resolution, unless the
    request opts in to a huge grid), beyond what a GeoTIFF can hold, or bigger than the free disk space."""
    grid = processing_grid(dataset, resolution_m)
    guard.check_grid_size(grid, dataset, resolution_m, request.allow_huge_grid)
    guard.check_disk_space(output_path, grid, preview=bool(request.preview_path))
    return grid


def check_elevations(request: TerraformRequest, band, log) -> int:
    """Values no planet has are no-data (ResampledSource masks them): log how many; InputError when all are.
    Two threads scan it, the second through its own handle on the input."""

    def reopen():
        dataset = source.open_dem(request.input_path)
        return dataset, source.elevation_band(dataset, request.band)

    name = os.path.basename(os.fspath(request.input_path))
    return guard.report_non_physical(band, request.max_abs_elevation, name, log, reopen=reopen)


def make_plan(request: TerraformRequest, output_path: str, dataset, band, model, log, grid=None) -> Plan:
    """The plan for ``request`` on an opened, checked ``dataset``/``band`` and a loaded ``model``.

    ``grid``: the one ``plan_grid`` already made for the request's own resolution, if any (the run checks it
    before loading the model); else it is made here at the model's resolution. The elevations' own check
    (``check_elevations``) is the run's: the local run overlaps it with the reader's first chip rows.
    """
    resolution_m = float(request.resolution_m or model.metadata.resolution_m)
    grid = grid or plan_grid(request, output_path, dataset, resolution_m)
    layout = make_layout(request, grid, model.metadata)
    log_scale(grid, resolution_m, log)
    conditioning = make_conditioning(request, model.metadata, grid, log, resolution_m)
    limit = request.max_abs_elevation  # the fit leaves out the non-physical values too
    if request.fit_to_earth:
        target = fit_target_m(model.ramp)
        scale = fit_vertical_scale(band, request.sea_level, target, limit=limit)
        log(
            f"Vertical scale {scale:.6g} (fit to Earth: the 99th percentile of the relief above sea level "
            f"{request.sea_level:g} lands at {target:g} m)"
        )
    else:
        scale = request.vertical_scale
        log(f"Vertical scale {scale:g}, sea level {request.sea_level:g}")
    palette = None
    if held_cell_px(request, model.metadata):  # a guide the conditioning has opened (or refused)
        palette = PaletteHold(conditioning.guide, request.guide_strength, model.output_scaling)
        log(f"Guide strength {request.guide_strength:g}: colours in {palette.cell} px cells move "
            f"{request.guide_strength:.0%} of the way to the guide's; tile margins {layout.margin} px (the model's "
            f"reach and one cell)")
    return Plan(
        request=request,
        output_path=output_path,
        grid=grid,
        layout=layout,
        stripes=plan_stripes(layout, request.stripe_width),
        relief=Relief(request.sea_level, scale),
        ramp=model.ramp,
        resolution_m=resolution_m,
        input_scaling=model.input_scaling,
        output_scaling=model.output_scaling,
        conditioning=conditioning,
        palette=palette,
    )


def make_layout(request: TerraformRequest, grid: Grid, metadata) -> ChipLayout:
    """Blended 256 px chips for a contract-1 model; kept-centre tiles of at most the request's tile size (0:
    ``default_tile``) for a tiling-independent one."""
    if not metadata.tiling_independent:
        if request.tile_size not in (0, metadata.tile_size):
            raise InputError(
                f"tile size {request.tile_size} px: {metadata.name} is a contract-1 model with fixed "
                f"{metadata.tile_size} px chips (leave the tile size at 0)"
            )
        return ChipLayout.build(grid.width, grid.height, metadata.tile_size, request.overlap)
    radius, alignment = held_margin(metadata.receptive_radius, metadata.alignment, held_cell_px(request, metadata))
    margin = margin_for(radius, alignment)
    tile = request.tile_size or default_tile(margin, alignment)
    return ChipLayout.kept(grid.width, grid.height, tile, margin, alignment)


def default_centre(margin: int, alignment: int = 1) -> int:
    """The smallest centre, a multiple of the TIFF block (and of ``alignment``), whose tile computes at most
    ``MAX_COMPUTED_PER_OUTPUT_PX`` pixels per output pixel with ``margin`` px margins."""
    quantum = math.lcm(BLOCK, alignment)
    centre = quantum
    while ((centre + 2 * margin) / centre) ** 2 > MAX_COMPUTED_PER_OUTPUT_PX:
        centre += quantum
    return centre


def default_tile(margin: int, alignment: int = 1) -> int:
    """The default side of kept-centre tiles: ``default_centre`` and the model's margins."""
    return default_centre(margin, alignment) + 2 * margin


def log_scale(grid: Grid, resolution_m: float, log):
    """Says how far the CRS's scale is from true at the grid's centre and whether the pixels were sized for it
    (``core.grid``): a Web Mercator DEM at 60°N gets pixels of 400 CRS metres for 200 m on the ground. Nothing
    for a geographic CRS (its pixels are sized from its ellipsoid, no scale factor)."""
    kx, ky = grid.scale_factor
    if (kx, ky) == (1.0, 1.0):
        return
    xres, yres = grid.pixel_size
    factor = f"{kx:.5g}" if math.isclose(kx, ky, rel_tol=1e-4) else f"{kx:.5g} (x), {ky:.5g} (y)"
    if grid.scale_corrected:
        log(f"True scale: the CRS stretches ground distances by {factor} at the DEM's centre, so pixels are "
            f"{xres:.6g} x {yres:.6g} CRS units for {resolution_m:g} m on the ground there")
    else:
        log(f"True scale: the CRS's scale factor at the DEM's centre is {factor}, within "
            f"{SCALE_TOLERANCE:.0%} of true: pixels are {xres:.6g} x {yres:.6g} CRS units, uncorrected")


def scale_metadata(grid: Grid) -> dict:
    """The output's record of the true-scale correction: the CRS's scale factor (x, y) at the centre and
    whether the pixels were sized for it."""
    kx, ky = grid.scale_factor
    return {"TERRAFORM_SCALE_FACTOR": f"{kx:.6g} {ky:.6g}",
            "TERRAFORM_SCALE_CORRECTED": "yes" if grid.scale_corrected else "no"}
