#!/usr/bin/env python3
"""`make demo`: a synthetic DEM through the real algorithm (qgis_process.bin, the built plugin, the bundled
model) -> out/synthetic_terraformed.tif and out/synthetic_before_after.png.

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
DEM = os.path.join(OUT, "synthetic_dem.tif")
RESULT = os.path.join(OUT, "synthetic_terraformed.tif")
PREVIEW = os.path.join(OUT, "synthetic_before_after.png")
SIZE = 2048  # 410 km at 200 m/pixel: 121 chips, well under a minute at ~50 ms/chip on 2 cores


def main():
    parser = argparse.ArgumentParser(description="Terraform a synthetic DEM with the real algorithm.")
    parser.add_argument("--model", help="another Terraform ONNX model instead of the bundled one")
    args = parser.parse_args()
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

    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "synthetic_dem.py"), DEM, "--size", str(SIZE)],
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
    cmd = [qgis_process, "run", "terraform:terraformdem", "--",
           f"INPUT={DEM}", f"OUTPUT={RESULT}", f"PREVIEW={PREVIEW}", "SEA_LEVEL=0"]
    if args.model:
        cmd.append(f"MODEL={os.path.abspath(args.model)}")
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:  # the algorithm replaces RESULT only when complete: an old one may still be there
        print(f"demo: qgis_process failed (exit {done.returncode})", file=sys.stderr)
        return 1
    print(f"\ndemo done in {elapsed:.0f} s:")
    for path in (DEM, RESULT, PREVIEW):
        if os.path.exists(path):
            print(f"  {os.path.relpath(path, ROOT)}  ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
