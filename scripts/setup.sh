#!/usr/bin/env bash
# Idempotent set-up: Debian's QGIS (when missing), then .venv with the pinned Python packages and this
# project's own package (pyproject.toml) installed editable, with its console commands (terraform-dem, ...).
# Run through `make setup`; every other target depends on it, so a fresh clone needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qgis_process.bin >/dev/null || ! /usr/bin/python3 -c "import qgis.core, osgeo.gdal" 2>/dev/null; then
  echo "== installing Debian's QGIS (qgis python3-qgis qgis-providers)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qgis python3-qgis qgis-providers python3-pip >/dev/null
fi

if ! command -v Xvfb >/dev/null; then  # the desktop test (tests/desktop) runs QGIS under a virtual display
  echo "== installing Xvfb"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xvfb >/dev/null \
    || echo "warning: Xvfb not installed; the desktop test will skip"
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv (system site packages: Debian's qgis and osgeo stay importable)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
echo "== installing pinned packages (numpy < 2 on Debian 12, see constraints.txt)"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
echo "== installing the terraform-dem package editable (pyproject.toml; .venv runs this checkout's code)"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dask,train]"
.venv/bin/python -c "import numpy, osgeo.gdal_array, qgis.core, onnxruntime, torch, rasterio.transform, distributed; import sys; assert numpy.__version__ < '2' or sys.version_info >= (3, 12); rasterio.transform.from_origin(0, 0, 1, 1)"
.venv/bin/terraform-dem --help >/dev/null  # the console entry points of the editable install
echo "== setup done: .venv ready"
