"""Whole-mosaic evaluation through the real engine: what a user sees, seams included.

For a region whose colourised mosaic and real satellite mosaic are in ``seed-mosaics/`` (``12CALIc.jpg`` +
``12CALI.jpg``): turn the colourised mosaic back into elevations (nearest ramp colour; white = sea), write
them as a GeoTIFF, run ``terraform_plugin.core.pipeline.run``, and compare the whole output with the real
mosaic: L1, colour distance, sharpness, periodic share, power per octave and chip-grid score, each beside the
real mosaic's own value where that is meaningful.

- Contract 1 (``evaluate_mosaic``): a 200 m grid in a metric CRS, the plugin's defaults (or a given overlap),
  compared pixel for pixel. Pictures: elevation | real | model, and a 1:1 crop where four chips meet.
- Contract 2 (``evaluate_placed_mosaic``): the mosaic on its place on Earth (``mosaic_places``), LOOK auto,
  the latitude from the georeference; without a guide, then with each guide recipe's GeoTIFF as the run's
  GUIDE; the real mosaic and the guides warped onto the output's grid and compared there. Pictures:
  elevation | real | model | model + guide | guide, and a 1:1 crop where four tiles meet.
"""

import dataclasses
import os
import re

import numpy as np
from osgeo import gdal, osr
from PIL import Image

from terraform_plugin.core import pipeline
from terraform_plugin.core.chips import DEFAULT_OVERLAP, chip_origins
from terraform_plugin.core.request import AUTO_LOOK

from . import metrics
from .mosaic_places import OutputGrid, common_window, manifest_entries, mosaic_georeference, write_geotiff, write_guide

MOSAIC_CRS = "EPSG:32633"  # any metric CRS: the mosaics carry no georeference, only their 200 m pixel
SEA_Z = -100.0  # what "white" turns into: below the default sea level of 0 m
_NAME = re.compile(r"^(\d+)([A-Z]+)c\.jpg$")


def find_mosaics(folder) -> dict:
    """{region: (colourised path, satellite path)} for the regions with both mosaics in ``folder``."""
    found = {}
    if not folder or not os.path.isdir(folder):
        return found
    for name in sorted(os.listdir(folder)):
        m = _NAME.match(name)
        sat = os.path.join(folder, f"{m[1]}{m[2]}.jpg") if m else None
        if m and os.path.isfile(sat):
            found[m[2]] = (os.path.join(folder, name), sat)
    return found


def mosaic_elevation(colourised: np.ndarray, ramp) -> np.ndarray:
    """Colourised RGB (H, W, 3) -> elevation (H, W) float32: each pixel takes its nearest ramp colour's stop.

    JPEG moves colours a few levels off the ramp, so each distinct colour takes the nearest of the ramp's
    stops and ``below`` (exactly, not through the baseline's 6-bit table, which confuses neighbouring
    stops); the ramp has 256 stops over 0-9000 m, so elevations come back in ~35 m steps.
    """
    packed = (colourised[..., 0].astype(np.int32) << 16) | (colourised[..., 1].astype(np.int32) << 8) | colourised[..., 2]
    colours, inverse = np.unique(packed.ravel(), return_inverse=True)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], -1).astype(np.float32)
    palette = np.vstack([ramp.colours, np.asarray(ramp.below, np.float64)]).astype(np.float32)
    nearest = np.empty(len(rgb), np.int64)
    for i in range(0, len(rgb), 65536):  # distinct colours in chunks: (chunk, stops) distances stay small
        chunk = rgb[i : i + 65536]
        nearest[i : i + 65536] = np.argmin((palette**2).sum(1)[None, :] - 2 * chunk @ palette.T, axis=1)
    classes = nearest[inverse].reshape(packed.shape)
    stops = np.append(ramp.elevations, SEA_Z).astype(np.float32)
    z = stops[classes]
    # The lowest stop is 0 m, which the sea rule (at or below sea level) would turn into sea: keep land land.
    land = classes < len(ramp.elevations)
    z[land] = np.maximum(z[land], 1.0)
    return z


def write_elevation(path, z, pixel_m):
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), z.shape[1], z.shape[0], 1, gdal.GDT_Float32, ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((500000.0, pixel_m, 0.0, 5000000.0, 0.0, -pixel_m))
    srs = osr.SpatialReference()
    srs.SetFromUserInput(MOSAIC_CRS)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(z)
    ds = None


def read_rgb(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    rgb = np.stack([ds.GetRasterBand(b).ReadAsArray() for b in (1, 2, 3)], -1)
    ds = None
    return rgb


_REAL_PERIODIC = {}  # key of a real mosaic -> its periodic pattern: ~25 s per 3072² mosaic, once per region


def periodic_fields(generated, real, key=None) -> dict:
    """The generated mosaic's periodic pattern beside the real one's: the peaks' share of the spectrum's energy,
    and their amplitude in grey levels - a share divides by the picture's own energy, so a soft, low-contrast
    picture gets a large share from a pattern no larger than the real image's chance peaks."""
    real_pattern = _REAL_PERIODIC.get(key) if key is not None else None
    if real_pattern is None:
        real_pattern = metrics.periodic_pattern(real)
        if key is not None:
            _REAL_PERIODIC[key] = real_pattern
    pattern = metrics.periodic_pattern(generated)
    return {"periodic_share": pattern["share"], "periodic_share_real": real_pattern["share"],
            "periodic_amplitude": pattern["amplitude"], "periodic_amplitude_real": real_pattern["amplitude"],
            "periodic_period_px": pattern["period_px"]}


def score(generated, real, tile, overlap, real_key=None) -> dict:
    """Whole-mosaic metrics; periodic pattern and chip-grid score also for the real mosaic (the reference)."""
    return {
        "l1": metrics.l1(generated, real),
        "colour_distance": metrics.colour_distance(generated, real),
        "sharpness_ratio": metrics.gradient_magnitude(generated) / metrics.gradient_magnitude(real),
        **periodic_fields(generated, real, real_key),
        "chip_grid_score": metrics.chip_grid_score(generated, tile, overlap),
        "chip_grid_score_real": metrics.chip_grid_score(real, tile, overlap),
        **metrics.spectrum_ratio(metrics.octave_power(generated), metrics.octave_power(real)),
    }


def _crop_at_chip_corner(size, tile, overlap, crop):
    """Top-left of a ``crop`` px window centred where chip edges cross, near the mosaic's middle."""
    origins = chip_origins(size, tile, overlap)
    corner = int(origins[len(origins) // 2])
    return int(np.clip(corner - crop // 2, 0, max(0, size - crop)))


def save_pictures(out_dir, region, overlap, elevation_rgb, real, generated, tile, side=1024, crop=512):
    """``<region>_overlap<o>.jpg`` (whole mosaics, scaled) and ``..._crop.jpg`` (1:1 where chips meet)."""
    def scaled(a):
        return Image.fromarray(a).resize((side, side), Image.BILINEAR)

    whole = Image.new("RGB", (3 * side, side))
    for i, a in enumerate((elevation_rgb, real, generated)):
        whole.paste(scaled(a), (i * side, 0))
    base = os.path.join(out_dir, f"{region}_overlap{overlap}")
    whole.save(base + ".jpg", quality=88)
    y = _crop_at_chip_corner(real.shape[0], tile, overlap, crop)
    x = _crop_at_chip_corner(real.shape[1], tile, overlap, crop)
    detail = Image.new("RGB", (3 * crop, crop))
    for i, a in enumerate((elevation_rgb, real, generated)):
        detail.paste(Image.fromarray(a[y : y + crop, x : x + crop]), (i * crop, 0))
    detail.save(base + "_crop.jpg", quality=90)
    return [base + ".jpg", base + "_crop.jpg"]


def evaluate_mosaic(model, region, colourised_path, satellite_path, out_dir, overlap=DEFAULT_OVERLAP, log=print):
    """Run one region's mosaic through the engine at ``overlap``; return its scores and picture paths."""
    with Image.open(colourised_path) as im:
        elevation_rgb = np.asarray(im.convert("RGB"))
    with Image.open(satellite_path) as im:
        real = np.asarray(im.convert("RGB"))
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    dem = os.path.join(work, f"{region}_elevation.tif")
    if not os.path.exists(dem):
        write_elevation(dem, mosaic_elevation(elevation_rgb, model.ramp), model.metadata.resolution_m)
    out = os.path.join(work, f"{region}_overlap{overlap}.tif")
    request = pipeline.TerraformRequest(input_path=dem, output_path=out, model_path=model.path, overlap=overlap)
    result = pipeline.run(request, model=model)
    generated = read_rgb(out)
    if generated.shape != real.shape:
        raise RuntimeError(f"{region}: the engine's grid {generated.shape} is not the mosaic's {real.shape}")
    tile = model.metadata.tile_size
    scores = {"region": region, "overlap": overlap, "chips": result.chips, "seconds": result.elapsed_s,
              **score(generated, real, tile, overlap, real_key=os.path.abspath(satellite_path))}
    scores["pictures"] = [os.path.relpath(p, out_dir) for p in
                          save_pictures(out_dir, region, overlap, elevation_rgb, real, generated, tile)]
    os.remove(out)
    log(f"{region} mosaic, overlap {overlap}: L1 {scores['l1']:.1f}, colour {scores['colour_distance']:.1f}, "
        f"sharpness {scores['sharpness_ratio']:.2f}, periodic {scores['periodic_share']:.2e} "
        f"(real {scores['periodic_share_real']:.2e}), chip grid {scores['chip_grid_score']:.2f} "
        f"(real {scores['chip_grid_score_real']:.2f})")
    return scores


def guide_supported() -> bool:
    """Whether this engine's requests take a colour guide (``TerraformRequest.guide_path``)."""
    return "guide_path" in {f.name for f in dataclasses.fields(pipeline.TerraformRequest)}


GUIDE_UNSUPPORTED = "not run: this engine's TerraformRequest has no guide_path (a colour guide needs a newer engine)"


def engine_run(model, dem, out, guide=None, look=AUTO_LOOK, guide_strength=None):
    """``core.pipeline.run`` on ``dem`` as a user runs it: the latitude from the georeference, ``look`` (default
    auto), and ``guide`` (a raster path) as the colour guide when given, held at ``guide_strength`` (None: the
    engine's default)."""
    extra = {"guide_path": guide} if guide is not None else {}
    if guide_strength is not None:
        extra["guide_strength"] = guide_strength
    request = pipeline.TerraformRequest(input_path=dem, output_path=out, model_path=model.path, look=look, **extra)
    return pipeline.run(request, model=model)


_REAL_POWER = {}  # (satellite path, grid, window) -> the real mosaic's per-octave power on the output's grid


def score_placed(generated, real, tiles, origin, real_key=None, texture_only=False) -> dict:
    """Scores of a run (or a guide) against the real mosaic on the output's grid. ``tiles`` (stride_y, stride_x)
    of the kept tile centres, ``origin`` the grid's origin in these pixels; ``texture_only`` (a guide): no periodic
    share or seams, which a smooth guide cannot have."""
    real_power = _REAL_POWER.get(real_key) if real_key is not None else None
    if real_power is None:
        real_power = metrics.octave_power(real)
        if real_key is not None:
            _REAL_POWER[real_key] = real_power
    out = {
        "l1": metrics.l1(generated, real),
        "colour_distance": metrics.colour_distance(generated, real),
        "sharpness_ratio": metrics.gradient_magnitude(generated) / metrics.gradient_magnitude(real),
        **metrics.spectrum_ratio(metrics.octave_power(generated), real_power),
    }
    if texture_only:
        return out
    out.update(periodic_fields(generated, real, None if real_key is None else ("placed",) + tuple(real_key)))
    if tiles:
        out["chip_grid_score"] = metrics.seam_score(generated, *tiles, *origin)
        out["chip_grid_score_real"] = metrics.seam_score(real, *tiles, *origin)
    return out


def _corner(size, stride, crop):
    """Top-left of a ``crop`` px window centred on the tile edge nearest the middle (any point without tiles)."""
    middle = size // 2
    edge = int(round(middle / stride) * stride) if stride else middle
    return int(np.clip(edge - crop // 2, 0, max(0, size - crop)))


def save_placed_pictures(out_dir, region, panels, tiles, origin, side=768, crop=512):
    """``<region>_placed.jpg`` (the panels side by side, scaled) and ``..._crop.jpg`` (1:1 where tiles meet)."""
    h, w = panels[0].shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    whole = Image.new("RGB", (len(panels) * size[0], size[1]))
    for i, a in enumerate(panels):
        whole.paste(Image.fromarray(a).resize(size, Image.BILINEAR), (i * size[0], 0))
    base = os.path.join(out_dir, f"{region}_placed")
    whole.save(base + ".jpg", quality=88)
    stride_y, stride_x = tiles or (0, 0)
    y = _corner(h - origin[0] % max(stride_y, 1), stride_y, crop) + origin[0] % max(stride_y, 1)
    x = _corner(w - origin[1] % max(stride_x, 1), stride_x, crop) + origin[1] % max(stride_x, 1)
    y, x = min(y, max(0, h - crop)), min(x, max(0, w - crop))
    detail = Image.new("RGB", (len(panels) * min(crop, w), min(crop, h)))
    for i, a in enumerate(panels):
        detail.paste(Image.fromarray(np.ascontiguousarray(a[y : y + crop, x : x + crop])), (i * min(crop, w), 0))
    detail.save(base + "_crop.jpg", quality=90)
    return [base + ".jpg", base + "_crop.jpg"]


def evaluate_placed_mosaic(model, region, colourised_path, satellite_path, out_dir, data_folders=None, recipes=(),
                           log=print) -> list:
    """One region's mosaic on its place, through the engine without a guide and with each recipe's guide.

    Returns one entry per run ({"region", "source": "model" | "model_<recipe>" | "<recipe>", scores, "seconds",
    "chips"}; the guides scored as pictures themselves); a run the engine cannot do is an entry with "skipped"."""
    with Image.open(colourised_path) as im:
        elevation_rgb = np.asarray(im.convert("RGB"))
    with Image.open(satellite_path) as im:
        real = np.asarray(im.convert("RGB"))
    georeference = mosaic_georeference(region, real.shape, manifest_entries(data_folders))
    if georeference is None:
        why = "not run: the mosaic's bounds (top_lat, bottom_lat, left_lon, right_lon, or a grid) are unknown"
        log(f"{region} mosaic: {why}")
        return [{"region": region, "source": "model", "skipped": why}]
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    dem = os.path.join(work, f"{region}_placed_elevation.tif")
    write_geotiff(dem, mosaic_elevation(elevation_rgb, model.ramp), georeference, gdal.GDT_Float32)
    real_tif = write_geotiff(os.path.join(work, f"{region}_real.tif"), real, georeference)
    colour_tif = write_geotiff(os.path.join(work, f"{region}_colourised.tif"), elevation_rgb, georeference)
    guides = {r.name: write_guide(os.path.join(work, f"{region}_{r.name}.tif"), real, georeference, r) for r in recipes}

    # Guided runs as a user gets them (the colours held to the guide's), and the first recipe's also unheld
    # (GUIDE_STRENGTH 0): the model's own reading of the guide, what training changes.
    runs = [("model", None, None)] + [(f"model_{r.name}", guides[r.name], None) for r in recipes]
    runs += [(f"model_{r.name}_own", guides[r.name], 0.0) for r in recipes[:1]]
    entries, outputs, grid = [], {}, None
    for source, guide, strength in runs:
        if guide is not None and not guide_supported():
            entries.append({"region": region, "source": source, "skipped": GUIDE_UNSUPPORTED})
            log(f"{region} mosaic, {source}: {GUIDE_UNSUPPORTED}")
            continue
        out = os.path.join(work, f"{region}_{source}.tif")
        result = engine_run(model, dem, out, guide, guide_strength=strength)
        run_grid = OutputGrid(out)
        os.remove(out)
        grid = grid or run_grid
        if (run_grid.height, run_grid.width) != (grid.height, grid.width):
            raise RuntimeError(f"{region}: the engine's grids differ between runs ({source})")
        outputs[source] = run_grid.rgba
        entries.append({"region": region, "source": source, "chips": result.chips, "seconds": result.elapsed_s,
                        "grid": [grid.width, grid.height]})
    real_on_grid = grid.warp(real_tif)
    elevation_on_grid = grid.warp(colour_tif, "near")
    guides_on_grid = {name: grid.warp(path) for name, path in guides.items()}
    y0, y1, x0, x1 = common_window(real_on_grid[..., 3] > 0, *[o[..., 3] > 0 for o in outputs.values()],
                                   *[g[..., 3] > 0 for g in guides_on_grid.values()])

    def cut(a):
        return np.ascontiguousarray(a[y0:y1, x0:x1, :3])

    truth, tiles, origin = cut(real_on_grid), grid.tiles(), (-y0, -x0)
    key = (os.path.abspath(satellite_path), grid.width, grid.height, y0, y1, x0, x1)
    for entry in entries:
        if "skipped" not in entry:
            entry.update(score_placed(cut(outputs[entry["source"]]), truth, tiles, origin, key))
    for name, picture in guides_on_grid.items():
        entries.append({"region": region, "source": name,
                        **score_placed(cut(picture), truth, tiles, origin, key, texture_only=True)})
    panels = [cut(elevation_on_grid), truth, cut(outputs["model"])]
    if "model_guide" in outputs:
        panels.append(cut(outputs["model_guide"]))
    if "guide" in guides_on_grid:
        panels.append(cut(guides_on_grid["guide"]))
    pictures = [os.path.relpath(p, out_dir) for p in save_placed_pictures(out_dir, region, panels, tiles, origin)]
    for entry in entries:
        entry["window"] = [y0, y1, x0, x1]
        log(_describe(entry))
    entries[0]["pictures"] = pictures
    return entries


def _describe(e) -> str:
    if "skipped" in e:
        return f"{e['region']} mosaic, {e['source']}: {e['skipped']}"
    extra = "" if "periodic_share" not in e else (f", periodic {e['periodic_share']:.2e} "
                                                 f"(real {e['periodic_share_real']:.2e})")
    return (f"{e['region']} mosaic, {e['source']}: L1 {e['l1']:.1f}, colour {e['colour_distance']:.1f}, "
            f"sharpness {e['sharpness_ratio']:.2f}, spectrum worst x{e['spectrum_worst_factor']:.2f}{extra}")
