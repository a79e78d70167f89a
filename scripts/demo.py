#!/usr/bin/env python3
"""`make demo`: a real place through the real algorithm (qgis_process.bin, the built plugin, the bundled model):
the SRTM crop of Aconcagua in data/dem/ (public domain, see data/dem/README.md), painted twice: with LOOK auto
(its own latitude, 32.6°S, and its elevation decide) -> out/aconcagua_terraformed.tif and
out/aconcagua_before_after.png, and with the look of the Bolivian Altiplano (LOOK=ANDES, the arid high plateau
the model learnt from) -> out/aconcagua_altiplano_terraformed.tif and out/aconcagua_altiplano_before_after.png.
A model without looks (contract 1) runs once. ``--synthetic`` runs the procedural DEM of scripts/synthetic_dem.py
instead (out/synthetic_*).

Runs exactly what a user runs headless; `make plugin` (a dependency of `make demo`) built build/terraform_plugin/
with onnxruntime for QGIS's Python. QGIS uses a private profile in out/.qgis-profile, so the user's own QGIS
settings are left alone.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "out")
BUILD = os.path.join(ROOT, "build")
MODEL = os.path.join(ROOT, "models", "terraform_generator.onnx")
REAL_DEM = os.path.join(ROOT, "data", "dem", "aconcagua_srtm.tif")  # 900 x 900 px at 3 arc-seconds
SIZE = 2048  # synthetic: 410 km at 200 m/pixel, 121 chips, well under a minute at ~50 ms/chip on 2 cores
ALTIPLANO = "ANDES"  # the look of the arid Bolivian Altiplano, if the model has it


def runs_for(model_path, name):
    """[(suffix, LOOK)]: auto, and the Altiplano look when the model declares it."""
    from terraform_plugin.core.onnxmeta import read_metadata

    looks = [look.id for look in read_metadata(model_path).looks]
    return [("", None)] + ([("_altiplano", ALTIPLANO)] if ALTIPLANO in looks and name == "aconcagua" else [])


def main():
    parser = argparse.ArgumentParser(description="Terraform a real place (or a synthetic DEM) with the real algorithm.")
    parser.add_argument("--model", help="another Terraform ONNX model instead of the bundled one")
    parser.add_argument("--synthetic", action="store_true", help="the procedural DEM instead of the SRTM crop")
    args = parser.parse_args()
    name = "synthetic" if args.synthetic else "aconcagua"
    dem = os.path.join(OUT, "synthetic_dem.tif") if args.synthetic else REAL_DEM
    if not os.path.isfile(dem) and not args.synthetic:
        print(f"demo: {os.path.relpath(dem, ROOT)} is missing from this checkout", file=sys.stderr)
        return 2
    if args.model is None and not os.path.isfile(MODEL):
        print(f"demo: the bundled model {os.path.relpath(MODEL, ROOT)} does not exist yet (it is trained and "
              "exported by training/; see models/MODEL_CARD.md once it is there). Nothing to run.", file=sys.stderr)
        return 2
    qgis_process = shutil.which("qgis_process.bin")
    if qgis_process is None:
        print("demo: qgis_process.bin not found: run `make setup` (installs Debian's QGIS)", file=sys.stderr)
        return 2
    bundled_missing = not os.path.isfile(os.path.join(BUILD, "terraform_plugin", "models", "terraform_generator.onnx"))
    if args.model is None and bundled_missing:
        # The model appeared after the last `make plugin`: refresh the build so the bundled model is there.
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_plugin.py")], check=True)

    os.makedirs(OUT, exist_ok=True)
    if args.synthetic:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "synthetic_dem.py"), dem, "--size", str(SIZE)],
                       check=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=BUILD,
               QGIS_CUSTOM_CONFIG_PATH=os.path.join(OUT, ".qgis-profile"))
    env.pop("PYTHONPATH", None)  # QGIS's own Python, not the venv's packages
    # Exit 1 with "already enabled" on a second `make demo`: only the algorithm check below decides.
    subprocess.run([qgis_process, "plugins", "enable", "terraform_plugin"], env=env, capture_output=True)
    probe = subprocess.run([qgis_process, "help", "terraform:terraformdem"], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"demo: qgis_process cannot load the plugin from {BUILD}: {probe.stderr.strip()[-400:]}", file=sys.stderr)
        return 1
    written, start = [dem], time.perf_counter()
    for suffix, look in runs_for(os.path.abspath(args.model) if args.model else MODEL, name):
        result = os.path.join(OUT, f"{name}{suffix}_terraformed.tif")
        preview = os.path.join(OUT, f"{name}{suffix}_before_after.png")
        cmd = [qgis_process, "run", "terraform:terraformdem", "--",
               f"INPUT={dem}", f"OUTPUT={result}", f"PREVIEW={preview}", "SEA_LEVEL=0"]
        if look:
            cmd.append(f"LOOK={look}")
        if args.model:
            cmd.append(f"MODEL={os.path.abspath(args.model)}")
        print("$ " + " ".join(cmd), flush=True)
        done = subprocess.run(cmd, env=env)
        if done.returncode != 0:  # the algorithm replaces RESULT only when complete: an old one may still be there
            print(f"demo: qgis_process failed (exit {done.returncode})", file=sys.stderr)
            return 1
        written += [result, preview]
    print(f"\ndemo done in {time.perf_counter() - start:.0f} s:")
    for path in written:
        if os.path.exists(path):
            print(f"  {os.path.relpath(path, ROOT)}  ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
