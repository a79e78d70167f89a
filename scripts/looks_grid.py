#!/usr/bin/env python3
"""A picture of a model's looks on one DEM: the ramp, then LOOK auto, then every look the model declares.

    .venv/bin/python scripts/looks_grid.py [--dem data/dem/aconcagua_srtm.tif] [--model models/terraform_generator.onnx]
        [--out docs/images/looks_aconcagua.jpg]

Each panel is a real run of the engine (core.pipeline.run, the same code the QGIS algorithm calls) with that LOOK
and the DEM's own latitudes; the panels are labelled with the look's id and label from the model's metadata.
"""

import argparse
import os
import sys
import tempfile
import textwrap

import numpy as np
from osgeo import gdal
from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = 4
PANEL = 360  # px per panel side in the picture


def _rgb(path):
    ds = gdal.Open(path)
    rgb = np.stack([ds.GetRasterBand(b).ReadAsArray() for b in (1, 2, 3)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def _ramp_panel(preview_png):
    """The left half of the engine's before/after preview: the DEM through the model's ramp."""
    image = Image.open(preview_png).convert("RGB")
    return image.crop((0, 0, image.width // 2 - 4, image.height))  # without the separator between the halves


def _font(size):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def main(argv=None):
    from terraform_plugin.core import pipeline
    from terraform_plugin.core.onnxmeta import read_metadata

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dem", default=os.path.join(ROOT, "data", "dem", "aconcagua_srtm.tif"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "terraform_generator.onnx"))
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "looks_aconcagua.jpg"))
    p.add_argument("--sea-level", type=float, default=0.0)
    p.add_argument("--title", default=None, help="caption line above the panels (default: the DEM's file name)")
    args = p.parse_args(argv)

    meta = read_metadata(args.model)
    looks = [("auto", "latitude and elevation decide")] + [(look.id, look.label) for look in meta.looks]
    panels = []
    with tempfile.TemporaryDirectory(prefix="looks_") as tmp:
        for i, (look, label) in enumerate(looks):
            out = os.path.join(tmp, f"{look}.tif")
            preview = os.path.join(tmp, f"{look}.png") if i == 0 else None
            request = pipeline.TerraformRequest(input_path=args.dem, output_path=out, model_path=args.model,
                                                sea_level=args.sea_level, look=look,
                                                preview_path=preview)
            pipeline.run(request, log=lambda line: None)
            if i == 0:
                panels.append(("ramp", f"the DEM through the model's ramp", _ramp_panel(preview)))
            panels.append((look, label, _rgb(out)))
            print(f"{look}: done", flush=True)

    rows = -(-len(panels) // COLUMNS)
    caption = 60  # the id, then the label on up to two lines
    sheet = Image.new("RGB", (COLUMNS * PANEL, rows * (PANEL + caption) + 36), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 8), args.title or os.path.basename(args.dem), fill="black", font=_font(18))
    for k, (look, label, image) in enumerate(panels):
        x, y = (k % COLUMNS) * PANEL, 36 + (k // COLUMNS) * (PANEL + caption)
        image = image.copy()
        image.thumbnail((PANEL - 8, PANEL - 8))
        sheet.paste(image, (x + 4, y + 4))
        top = y + 4 + image.height + 4
        draw.text((x + 6, top), look, fill="black", font=_font(15))
        for n, line in enumerate(textwrap.wrap(label, 50)[:2]):
            draw.text((x + 6, top + 19 + 15 * n), line, fill=(70, 70, 70), font=_font(12))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
