"""Whole-mosaic evaluation through the real engine: what a user sees, seams included.

For a region whose colourised mosaic and real satellite mosaic are in ``seed-mosaics/`` (``12CALIc.jpg`` +
``12CALI.jpg``): turn the colourised mosaic back into elevations (nearest ramp colour; white = sea), write
them as a 200 m GeoTIFF, run ``terraform_plugin.core.pipeline.run`` with the plugin's defaults (or a given
overlap), and compare the whole output with the real mosaic: L1, colour distance, sharpness, periodic share
and chip-grid score, each beside the real mosaic's own value where that is meaningful. Writes a side-by-side
picture (elevation | real | model) and a full-resolution crop where four chips meet.
"""

import os
import re

import numpy as np
from osgeo import gdal, osr
from PIL import Image

from terraform_plugin.core import pipeline
from terraform_plugin.core.chips import DEFAULT_OVERLAP, chip_origins

from . import metrics

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


_REAL_PERIODIC = {}  # satellite mosaic path -> its periodic share: ~25 s per 3072² mosaic, once per region


def score(generated, real, tile, overlap, real_key=None) -> dict:
    """Whole-mosaic metrics; periodic share and chip-grid score also for the real mosaic (the reference)."""
    if real_key is None or real_key not in _REAL_PERIODIC:
        periodic_real = metrics.periodic_share(real)
        if real_key is not None:
            _REAL_PERIODIC[real_key] = periodic_real
    else:
        periodic_real = _REAL_PERIODIC[real_key]
    return {
        "l1": metrics.l1(generated, real),
        "colour_distance": metrics.colour_distance(generated, real),
        "sharpness_ratio": metrics.gradient_magnitude(generated) / metrics.gradient_magnitude(real),
        "periodic_share": metrics.periodic_share(generated),
        "periodic_share_real": periodic_real,
        "chip_grid_score": metrics.chip_grid_score(generated, tile, overlap),
        "chip_grid_score_real": metrics.chip_grid_score(real, tile, overlap),
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
