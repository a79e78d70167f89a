#!/usr/bin/env python3
"""`make package`: dist/terraform_plugin.zip from build/terraform_plugin/, checked against plugins.qgis.org
(metadata rules and its security scan, scripts/upload_checks.py).

The zip holds one top-level folder terraform_plugin/ with __init__.py, metadata.txt, LICENSE and the bundled
model, no compiled Python and no deps/: a wheel is specific to one Python and platform, so users install
onnxruntime for their QGIS Python with the plugin's own installer (Plugins › Terraform DEM › Install/repair
Terraform DEM dependencies; the algorithm's error also prints the manual command).
"""

import argparse
import configparser
import os
import re
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upload_checks  # noqa: E402 (scripts/ is not a package)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "terraform_plugin"
MAX_BYTES = 25_000_000  # plugins.qgis.org upload limit
REQUIRED_METADATA = ("name", "description", "about", "version", "qgisMinimumVersion", "author", "email",
                     "tracker", "repository", "hasProcessingProvider", "tags", "changelog")
EXCLUDED_DIRS = {"__pycache__", "deps", ".pytest_cache", ".git"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


MODEL = "models/terraform_generator.onnx"


def build_zip(src, zip_path, skip=()):
    os.makedirs(os.path.dirname(zip_path), exist_ok=True)
    tmp = zip_path + ".part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for folder, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, src).replace(os.sep, "/")
                if name.endswith(EXCLUDED_SUFFIXES) or rel in skip:
                    continue
                zf.write(path, f"{PACKAGE}/{rel}")
    os.replace(tmp, zip_path)  # never leave a half-written zip under the final name


def check_zip(zip_path):
    """plugins.qgis.org's rules; returns a list of problems (empty when the zip would be accepted)."""
    problems = []
    size = os.path.getsize(zip_path)
    if size > MAX_BYTES:
        problems.append(f"{size} bytes > {MAX_BYTES}")
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if tops != {PACKAGE}:
            problems.append(f"top-level entries must be only {PACKAGE}/, found {sorted(tops)}")
        for required in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{PACKAGE}/{required}" not in names:
                problems.append(f"missing {PACKAGE}/{required}")
        bad = [n for n in names if n.endswith(EXCLUDED_SUFFIXES) or "/__pycache__/" in n or f"{PACKAGE}/deps/" in n]
        if bad:
            problems.append(f"must not contain compiled files or deps/: {bad[:5]}")
        if f"{PACKAGE}/metadata.txt" in names:
            meta = configparser.ConfigParser()
            meta.read_string(zf.read(f"{PACKAGE}/metadata.txt").decode("utf-8"))
            general = meta["general"] if meta.has_section("general") else {}
            for key in REQUIRED_METADATA:
                if not str(general.get(key, "")).strip():
                    problems.append(f"metadata.txt lacks {key}")
            if general.get("qgisMinimumVersion") != "3.22":
                problems.append("metadata.txt qgisMinimumVersion must be 3.22")
            if general.get("hasProcessingProvider") != "yes":
                problems.append("metadata.txt hasProcessingProvider must be yes")
            # plugins.qgis.org lists a plugin for QGIS 4 only when qgisMaximumVersion >= 4.0 (supportsQt6 is ignored).
            maximum = str(general.get("qgisMaximumVersion", ""))
            if not re.fullmatch(r"4\.\d+", maximum):
                problems.append(f"metadata.txt qgisMaximumVersion must be 4.x (4.99) for QGIS 4, got {maximum!r}")
            if not re.fullmatch(r"\d+\.\d+\.\d+", str(general.get("version", ""))):
                problems.append("metadata.txt version must be X.Y.Z")
            # The Plugin Manager renders about/description as HTML: a <placeholder> would vanish.
            for key in ("about", "description"):
                tag = re.search(r"<[^>]*>", str(general.get(key, "")))
                if tag:
                    problems.append(f"metadata.txt {key} contains {tag.group(0)}, which the Plugin Manager "
                                    "would swallow as an HTML tag")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=os.path.join(ROOT, "build", PACKAGE))
    parser.add_argument("--out", default=os.path.join(ROOT, "dist", f"{PACKAGE}.zip"))
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.src, "metadata.txt")):
        raise SystemExit(f"{args.src} is not a built plugin: run `make plugin` first")
    if not os.path.isfile(os.path.join(args.src, "models", "terraform_generator.onnx")):
        print("warning: no bundled model in the build (models/terraform_generator.onnx): users must pick one")
    build_zip(args.src, args.out)
    if os.path.getsize(args.out) > MAX_BYTES and os.path.isfile(os.path.join(args.src, MODEL)):
        # A full-size generator (54 M parameters, ~216 MB float32) cannot fit the repository's limit: publish
        # the code alone; users pick the model file (MODEL parameter) from the release page.
        print(f"warning: with {MODEL} the zip is {os.path.getsize(args.out):,} bytes > {MAX_BYTES:,}: "
              "packaging without the model (users must choose a model file)")
        build_zip(args.src, args.out, skip={MODEL})
    problems = check_zip(args.out)
    findings = upload_checks.scan(args.out)
    blocked = upload_checks.blocking(findings)
    if blocked:
        problems.append("security scan (Bandit + detect-secrets) blocks the upload:\n" + upload_checks.describe(blocked))
    if problems:
        os.remove(args.out)
        raise SystemExit("package rejected:\n  " + "\n  ".join(problems))
    print(f"{os.path.relpath(args.out, ROOT)}: {os.path.getsize(args.out):,} bytes, passes plugins.qgis.org checks "
          f"(security scan: {len(blocked)} blocking, {len(findings)} findings in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
