"""Build a training dataset in the seed layout: ``<OUT>/<REGION>/<row>,<col>c.jpg`` + ``<row>,<col>.jpg``.

    python -m training.prepare --dem dem.tif --imagery rgb.tif --region ALPS --label "Alps - ..." --out data/mine
    python -m training.prepare --pairs ../shared/data/seed-pairs --out data/mine

From a DEM and a co-registered RGB image (any CRS, any resolution): both are resampled onto one grid at
--resolution metres per pixel (the DEM's own CRS when it is projected in metres, else the UTM zone of its
centre), the elevation is colourised with the plugin's training ramp, and 256 px chips are cut, skipping
those with too much no-data. The manifest records that grid (CRS, geotransform, size) and the region's label,
so every chip's latitude is known exactly and the region can become a look of a conditioned model
(training.finetune). Seed-layout folders (--pairs) are checked and linked as they are. Either way a
manifest.json records regions, chip counts, sources and licence notes.
"""

import argparse
import datetime
import json
import os

import numpy as np
from osgeo import gdal, osr
from PIL import Image

from terraform_plugin.core.ramp import is_sea, training_ramp

from .data import CHIP, find_pairs

gdal.UseExceptions()  # errors as exceptions with GDAL's message, not silent None

MANIFEST = "manifest.json"
SEED_RESOLUTION_M = 200.0  # the seed pairs: 256 px chips of 51.2 km (../shared/data/README.md)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dem", help="elevation GeoTIFF (metres), with a CRS")
    src.add_argument("--pairs", nargs="+", help="seed-layout folders (region folders, or folders of them)")
    p.add_argument("--imagery", help="RGB GeoTIFF co-registered with --dem (first three bands are R, G, B)")
    p.add_argument("--region", help="region name for --dem (folder name; letters, digits, _ and -): the look's id")
    p.add_argument("--label", help="what a user reads for this region's look, e.g. \"My valley - alpine meadows and "
                                   "spruce\" (default: the region name)")
    p.add_argument("--out", required=True, help="dataset folder (created; a manifest.json is kept up to date)")
    p.add_argument("--resolution", type=float, default=SEED_RESOLUTION_M, help="metres per pixel of the chips (default 200)")
    p.add_argument("--crs", default=None, help="grid CRS (default: the DEM's if projected in metres, else UTM)")
    p.add_argument("--max-nodata", type=float, default=0.02,
                   help="skip chips with more than this fraction of no-data in either image (default 0.02)")
    p.add_argument("--sea-level", type=float, default=0.0,
                   help="elevations at or below this are sea and get the ramp's below colour, white (default 0)")
    p.add_argument("--imagery-max", type=float, default=None,
                   help="imagery value shown as 255 (default: 255 for 8-bit imagery, else its 99.5th percentile)")
    p.add_argument("--licence", default=None, help="licence / attribution note of the sources, kept in the manifest")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the chips (default 95)")
    args = p.parse_args(argv)
    if args.dem and not (args.imagery and args.region):
        p.error("--dem needs --imagery and --region")
    for path in (args.dem, args.imagery):
        if path and not os.path.isfile(path):
            p.error(f"{path}: no such file")
    if args.region and not all(ch.isalnum() or ch in "_-" for ch in args.region):
        p.error(f"--region {args.region!r}: use letters, digits, _ and - only")
    if args.region and args.region.lower() == "auto":
        p.error("--region auto: that name is the plugin's \"no look\" choice; pick another")
    if args.label is not None and not (args.dem and args.label.strip()):
        p.error("--label names a --dem region's look: give it with --dem, and not empty")
    return args


def _srs(text):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(text)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # x = easting / longitude everywhere
    return srs


def _dataset_srs(ds, path):
    wkt = ds.GetProjection()
    if not wkt:
        raise SystemExit(f"{path} has no CRS: georeference it (e.g. gdal_edit.py -a_srs EPSG:4326 {path})")
    return _srs(wkt)


def _centre(ds):
    gt = ds.GetGeoTransform()
    return (gt[0] + gt[1] * ds.RasterXSize / 2 + gt[2] * ds.RasterYSize / 2,
            gt[3] + gt[4] * ds.RasterXSize / 2 + gt[5] * ds.RasterYSize / 2)


def grid_srs(dem, dem_srs, wanted=None):
    """The chips' CRS: --crs, else the DEM's when projected in metres, else the UTM zone of its centre."""
    if wanted:
        return _srs(wanted)
    if dem_srs.IsProjected() and abs(dem_srs.GetLinearUnits() - 1.0) < 1e-9:
        return dem_srs
    lon, lat, _ = osr.CoordinateTransformation(dem_srs, _srs("EPSG:4326")).TransformPoint(*_centre(dem))
    zone = int((lon + 180) // 6) % 60 + 1
    return _srs(f"EPSG:{(32600 if lat >= 0 else 32700) + zone}")


def _pixel_metres(ds, srs, target):
    """Rough size of one source pixel on the target grid (to choose the resampling)."""
    gt = ds.GetGeoTransform()
    x, y = _centre(ds)
    t = osr.CoordinateTransformation(srs, target)
    a, b = t.TransformPoint(x, y)[:2], t.TransformPoint(x + gt[1], y)[:2]
    return float(np.hypot(b[0] - a[0], b[1] - a[1]))


def warp(ds, srs, target, bounds, shape, resolution, bands):
    """Bands of ``ds`` onto the target grid as float32 (bands, H, W), NaN where there is no data."""
    # Average when shrinking (every source pixel counts, no aliasing), bilinear when enlarging.
    alg = "average" if _pixel_metres(ds, srs, target) < resolution else "bilinear"
    ds = gdal.Translate("", ds, format="VRT", bandList=bands)  # this GDAL's Warp has no bandList
    out = gdal.Warp("", ds, options=gdal.WarpOptions(
        format="MEM", srcSRS=srs.ExportToWkt(), dstSRS=target.ExportToWkt(), outputBounds=bounds,
        width=shape[1], height=shape[0], resampleAlg=alg, outputType=gdal.GDT_Float32, dstNodata=float("nan")))
    return np.stack([out.GetRasterBand(i + 1).ReadAsArray() for i in range(len(bands))]).astype(np.float32)


def _grid(dem, dem_srs, target, resolution):
    """Bounds (xmin, ymin, xmax, ymax) and shape of the DEM's footprint on the target CRS at ``resolution``."""
    probe = gdal.Warp("", dem, options=gdal.WarpOptions(format="VRT", srcSRS=dem_srs.ExportToWkt(),
                                                        dstSRS=target.ExportToWkt(), xRes=resolution,
                                                        yRes=resolution, targetAlignedPixels=True))
    gt = probe.GetGeoTransform()
    w, h = probe.RasterXSize, probe.RasterYSize
    return (gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3]), (h, w)


def imagery_bands(img, path):
    """([R, G, B] band numbers, alpha band number or None); SystemExit saying why imagery cannot be used.

    Three bands are R, G, B; a fourth that is an alpha band (or any band whose colour interpretation says
    alpha) is used as a mask - transparent pixels are no-data - and is never read as colour.
    """
    bands = [img.GetRasterBand(i + 1).GetColorInterpretation() for i in range(img.RasterCount)]
    alpha = next((i + 1 for i, c in enumerate(bands) if c == gdal.GCI_AlphaBand), None)
    colour = [i + 1 for i in range(img.RasterCount) if i + 1 != alpha]
    if len(colour) < 3:
        kind = {1: "one band (greyscale, panchromatic, or an elevation raster given as --imagery?)",
                2: "two bands (greyscale + alpha?)"}.get(img.RasterCount, f"{len(colour)} colour bands")
        raise SystemExit(f"{path}: imagery must be colour, R, G and B (an optional alpha band aside); it has {kind}")
    if img.RasterCount == 4 and alpha is None:
        alpha = 4  # RGBA saved without colour interpretation (PNG/JPEG2000 exports): band 4 is not colour
        colour = [1, 2, 3]
    return colour[:3], alpha


def _footprint(ds, srs, target):
    """(xmin, ymin, xmax, ymax) of ``ds`` in ``target``, or None when it cannot be transformed there."""
    try:
        probe = gdal.Warp("", ds, options=gdal.WarpOptions(format="VRT", srcSRS=srs.ExportToWkt(),
                                                            dstSRS=target.ExportToWkt()))
    except RuntimeError:
        return None
    gt = probe.GetGeoTransform()
    w, h = probe.RasterXSize, probe.RasterYSize
    return (gt[0], gt[3] + gt[5] * h, gt[0] + gt[1] * w, gt[3])


def check_overlap(dem_bounds, img_bounds, args, crs_name):
    """SystemExit when the imagery does not cover any of the DEM: no chip could ever pair them."""
    def fmt(b):
        return f"x {b[0]:.0f}..{b[2]:.0f}, y {b[1]:.0f}..{b[3]:.0f}"

    if img_bounds is None or (min(dem_bounds[2], img_bounds[2]) <= max(dem_bounds[0], img_bounds[0])
                              or min(dem_bounds[3], img_bounds[3]) <= max(dem_bounds[1], img_bounds[1])):
        where = fmt(img_bounds) if img_bounds else "nowhere it can be placed"
        raise SystemExit(
            f"{args.dem} and {args.imagery} do not overlap: in {crs_name} the DEM covers {fmt(dem_bounds)} m and "
            f"the imagery {where}. Are they of the same place, and is each one's CRS right?")


def from_rasters(args):
    # GDAL rather than rasterio: rasterio 1.4 with affine 3.x fails on Python 3.11 (Affine cached_property).
    dem, img = gdal.Open(args.dem), gdal.Open(args.imagery)
    colour, alpha = imagery_bands(img, args.imagery)
    dem_srs, img_srs = _dataset_srs(dem, args.dem), _dataset_srs(img, args.imagery)
    target = grid_srs(dem, dem_srs, args.crs)
    bounds, shape = _grid(dem, dem_srs, target, args.resolution)
    check_overlap(bounds, _footprint(img, img_srs, target), args,
                  (target.GetAuthorityName(None) or "") + ":" + (target.GetAuthorityCode(None) or ""))
    z = warp(dem, dem_srs, target, bounds, shape, args.resolution, [1])[0]
    rgb = warp(img, img_srs, target, bounds, shape, args.resolution, colour + ([alpha] if alpha else []))
    if alpha:  # transparent (even partly, after resampling) = no-data; the alpha band is dropped
        rgb, opacity = rgb[:3], rgb[3]
        opaque = {gdal.GDT_Byte: 255.0, gdal.GDT_UInt16: 65535.0}.get(img.GetRasterBand(alpha).DataType, 1.0)
        rgb[:, ~(opacity >= 0.998 * opaque)] = np.nan
    eight_bit = img.GetRasterBand(colour[0]).DataType == gdal.GDT_Byte
    top = args.imagery_max or (255.0 if eight_bit else float(np.nanpercentile(rgb, 99.5)))
    crs_name = (target.GetAuthorityName(None) or "") + ":" + (target.GetAuthorityCode(None) or "")
    height, width = shape
    ramp = training_ramp()
    out_dir = os.path.join(args.out, args.region)
    os.makedirs(out_dir, exist_ok=True)
    written = skipped = 0
    for row in range(0, height - CHIP + 1, CHIP):
        for col in range(0, width - CHIP + 1, CHIP):
            zc = z[row : row + CHIP, col : col + CHIP]
            ic = rgb[:, row : row + CHIP, col : col + CHIP]
            nodata = np.isnan(zc) | np.isnan(ic).any(0)
            if nodata.mean() > args.max_nodata:
                skipped += 1
                continue
            ramp_rgb = ramp.colourise(zc, sea=is_sea(zc, args.sea_level))  # NaN also gets the below colour, as in the seed
            image = np.nan_to_num(ic, nan=0.0).transpose(1, 2, 0) * (255.0 / top)
            # Imagery first, elevation last: find_pairs pairs by the elevation chip, so a killed run never
            # leaves an elevation chip without its imagery; each file is written whole, then renamed.
            _save_jpeg(np.clip(np.rint(image), 0, 255).astype(np.uint8), os.path.join(out_dir, f"{row},{col}.jpg"),
                       args.quality)
            _save_jpeg(ramp_rgb, os.path.join(out_dir, f"{row},{col}c.jpg"), args.quality)
            written += 1
    if not written:
        raise SystemExit(f"no chip had at most {args.max_nodata:.0%} no-data: do the DEM and imagery overlap by "
                         f"{CHIP * args.resolution / 1000:g} km or more?")
    print(f"{args.region}: {written} chips written, {skipped} skipped for no-data, grid {width}x{height} px "
          f"at {args.resolution:g} m in {crs_name}")
    return {args.region: {"chips": written, "skipped_nodata": skipped, "dem": os.path.abspath(args.dem),
                          "imagery": os.path.abspath(args.imagery), "crs": crs_name,
                          "resolution_m": args.resolution, "sea_level_m": args.sea_level,
                          "imagery_max": top, "licence": args.licence,
                          "label": (args.label or args.region).strip(),
                          "grid": chip_grid(target, bounds, shape)}}


def chip_grid(target, bounds, shape) -> dict:
    """The grid the chips were cut from, as regions.RegionGeo reads it: chip ``<row>,<col>`` starts at pixel
    (row, col) of it, so any point of any chip has an exact latitude (the trainer's latitude planes)."""
    (xmin, ymin, xmax, ymax), (height, width) = bounds, shape
    return {"wkt": target.ExportToWkt(), "width": width, "height": height,
            "geotransform": [xmin, (xmax - xmin) / width, 0.0, ymax, 0.0, -(ymax - ymin) / height]}


def _save_jpeg(array, path, quality):
    """Atomic: a kill mid-write leaves a hidden .tmp, never a truncated chip under the real name."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp")
    Image.fromarray(array).save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, path)


def from_pairs(args):
    """Seed-layout folders as they are: validated, counted and linked into --out (nothing copied)."""
    pairs = find_pairs(args.pairs)
    os.makedirs(args.out, exist_ok=True)
    regions = {}
    for p in pairs:
        regions.setdefault(p.region, []).append(p)
    entries = {}
    for region, items in sorted(regions.items()):
        with Image.open(items[0].elevation) as a, Image.open(items[0].satellite) as b:
            if a.size != (CHIP, CHIP) or b.size != (CHIP, CHIP):
                raise SystemExit(f"{items[0].elevation}: chips must be {CHIP} px, found {a.size} and {b.size}")
        source = os.path.dirname(os.path.abspath(items[0].elevation))
        link = os.path.join(args.out, region)
        if os.path.lexists(link) and os.path.realpath(link) != os.path.realpath(source):
            raise SystemExit(f"{link} exists and is not {source}")
        if not os.path.lexists(link):
            os.symlink(source, link, target_is_directory=True)
        entries[region] = {"chips": len(items), "source": source, "resolution_m": args.resolution,
                           "licence": args.licence}
        print(f"{region}: {len(items)} pairs ({source})")
    return entries


def read_manifest(path) -> dict:
    """A dataset's manifest.json; SystemExit naming the file when it is truncated or damaged (it is written
    atomically, so only a copy cut short or an edit does that)."""
    try:
        with open(path) as f:
            manifest = json.load(f)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("regions"), dict):
            raise ValueError("no regions table")
    except ValueError as exc:  # json.JSONDecodeError is one
        raise SystemExit(f"{path} is truncated or damaged and cannot be read ({exc}): restore it, or remove it "
                         "and run training.prepare again for each region of the folder") from None
    return manifest


def update_manifest(out, entries):
    path = os.path.join(out, MANIFEST)
    manifest = {"layout": "<REGION>/<row>,<col>c.jpg (ramp-coloured elevation) + <row>,<col>.jpg (imagery)",
                "ramp": "Turbo over 0-9000 m, white below 0 m / sea / no-data (terraform_plugin.core.ramp)",
                "chip_px": CHIP, "regions": {}}
    if os.path.exists(path):
        manifest = read_manifest(path)
    manifest["regions"].update(entries)
    manifest["updated"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest["total_chips"] = sum(r["chips"] for r in manifest["regions"].values())
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(path + ".tmp", path)
    return manifest


def main(argv=None):
    args = parse_args(argv)
    entries = from_rasters(args) if args.dem else from_pairs(args)
    return update_manifest(args.out, entries)


if __name__ == "__main__":
    main()
