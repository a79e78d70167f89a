"""The README's fine-tune walk-through on a real place, end to end, with numbers and a before/after picture.

"Your region" is the CALI seed mosaic (California and Nevada, 34-39.5°N), and the weights to fine-tune are ones
that never saw it: the held-out line's trainable weights (models/terraform_trainable_heldout.pt). What a user
has, made from the mosaic: its elevation (read back from the colourised mosaic) and its real image as GeoTIFFs
at their place on Earth.

1. The northern half is the training area: ``training.prepare --dem --imagery --region CALIVALLEY``.
2. ``training.finetune`` from those weights, ``--steps`` steps, exported with CALIVALLEY as a new look; the
   model before is the same weights exported as they are.
3. The southern half, which the fine-tune never saw, through the engine with the weights before (look auto) and
   after (LOOK=CALIVALLEY): scores against the real image -> OUT/scores.json, OUT/before_after.jpg.

    .venv/bin/python scripts/finetune_example.py [--steps 500] [--out runs/finetune-example]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from osgeo import gdal
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from terraform_plugin.core.model import TerraformModel  # noqa: E402
from terraform_plugin.core.request import AUTO_LOOK  # noqa: E402
from training.mosaic_eval import engine_run, mosaic_elevation, read_rgb, score_placed  # noqa: E402
from training.mosaic_places import OutputGrid, common_window, mosaic_georeference, write_geotiff  # noqa: E402

REGION, LOOK = "CALI", "CALIVALLEY"
MOSAICS = os.path.join(ROOT, "..", "shared", "data", "seed-mosaics")


def half(array, georeference, north: bool):
    """The northern or southern half of a mosaic with its georeference (rows split at the middle)."""
    h = array.shape[0] // 2
    wkt, gt = georeference
    if north:
        return array[:h], georeference
    return array[h:], (wkt, (gt[0], gt[1], gt[2], gt[3] + gt[5] * h, gt[4], gt[5]))


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def paint(model_path, dem, out, look):
    result = engine_run(TerraformModel(model_path), dem, out, look=look)
    return OutputGrid(out), result.elapsed_s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=os.path.join(ROOT, "models", "terraform_trainable_heldout.pt"),
                   help="trainable weights that never saw CALI (default: the shipped held-out line's)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "finetune-example"))
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    work = os.path.join(a.out, "work")
    os.makedirs(work, exist_ok=True)
    real = read_rgb(os.path.join(MOSAICS, f"12{REGION}.jpg"))
    colourised = read_rgb(os.path.join(MOSAICS, f"12{REGION}c.jpg"))
    py = sys.executable
    before = os.path.join(a.out, "before.onnx")
    run([py, "-m", "training.export", "--checkpoint", a.weights, "--output", before])
    z = mosaic_elevation(colourised, TerraformModel(before).ramp)
    georeference = mosaic_georeference(REGION, real.shape)
    files = {}
    for name, north in (("north", True), ("south", False)):
        dem, g = half(z, georeference, north)
        files[f"{name}_dem"] = write_geotiff(os.path.join(work, f"{name}_dem.tif"), dem, g, gdal.GDT_Float32)
        image, g = half(real, georeference, north)
        files[f"{name}_image"] = write_geotiff(os.path.join(work, f"{name}_image.tif"), image, g)

    data, after = os.path.join(a.out, "data"), os.path.join(a.out, f"{LOOK.lower()}.onnx")
    run([py, "-m", "training.prepare", "--dem", files["north_dem"], "--imagery", files["north_image"],
         "--region", LOOK, "--label", "California valley - dry foothills, oak savanna and sierra",
         "--licence", "SRTM (public domain); Sentinel-2 cloudless by EOX (CC BY-NC-SA 4.0)", "--out", data])
    started = time.perf_counter()
    run([py, "-m", "training.finetune", "--data", data, "--out", os.path.join(a.out, "run"),
         "--weights", a.weights, "--steps", str(a.steps), "--export", after, "--threads", str(a.threads)])
    fine_tune_s = time.perf_counter() - started

    outputs = {}
    for source, model, look in (("before", before, AUTO_LOOK), ("after", after, LOOK)):
        outputs[source], seconds = paint(model, files["south_dem"], os.path.join(work, f"south_{source}.tif"), look)
        print(f"{source}: painted the southern half in {seconds:.0f} s", flush=True)
    grid = outputs["before"]
    truth = grid.warp(files["south_image"])
    y0, y1, x0, x1 = common_window(truth[..., 3] > 0, *[o.rgba[..., 3] > 0 for o in outputs.values()])
    truth = np.ascontiguousarray(truth[y0:y1, x0:x1, :3])
    scores = {"region": REGION, "look": LOOK, "steps": a.steps, "fine_tune_seconds": round(fine_tune_s),
              "window": [y0, y1, x0, x1]}
    pictures = [truth]
    for source, grid_out in outputs.items():
        painted = np.ascontiguousarray(grid_out.rgba[y0:y1, x0:x1, :3])
        pictures.append(painted)
        scored = score_placed(painted, truth, None, (0, 0), texture_only=True)
        scores[source] = {k: round(float(scored[k]), 3) for k in ("l1", "colour_distance", "sharpness_ratio")}
    with open(os.path.join(a.out, "scores.json"), "w") as f:
        json.dump(scores, f, indent=2)
    print(json.dumps(scores, indent=2))
    # real | before | after, a 768 px wide window of the southern half at 1:1
    y, x = (y1 - y0) // 2 - 256, (x1 - x0) // 2 - 384
    panels = [Image.fromarray(np.ascontiguousarray(p[max(0, y):y + 512, max(0, x):x + 768])) for p in pictures]
    sheet = Image.new("RGB", (sum(q.width for q in panels), panels[0].height))
    for i, q in enumerate(panels):
        sheet.paste(q, (i * panels[0].width, 0))
    sheet.save(os.path.join(a.out, "before_after.jpg"), quality=88)


if __name__ == "__main__":
    main()
