#!/usr/bin/env bash
# Plugin and engine tests under another QGIS, in a cached Debian chroot (scripts/qgis_chroot.sh builds it when
# absent). Training tests run once, on the host (`make test`): they do not depend on QGIS.
#
#   scripts/matrix.sh 3.40|3.44        -> out/matrix/qgis-<version>.txt (summary), .log, .xml (JUnit) and
#                                         desktop-<version>/ (the desktop test's screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: matrix.sh 3.40|3.44}
mkdir -p out/matrix
bash scripts/qgis_chroot.sh build "$version"
root=$(bash scripts/qgis_chroot.sh path "$version")
# Inside: a venv over Debian's Python (system site packages: QGIS, GDAL and Debian's numpy stay in charge),
# with only what the plugin and engine tests need, pinned as in requirements.txt; constraints.txt carries the
# platform-dependent numpy rule (numpy < 2 only on Python < 3.12, i.e. bookworm's GDAL).
inner='
set -euo pipefail
# Debian pyproj (a reference in the latitude, grid and guide tests) looks for the PROJ data under the venv
# prefix: point it at the system copy, where GDAL finds it.
export PROJ_DATA=/usr/share/proj
# The desktop test needs a virtual display (chroots cached before it was in the recipe lack it).
command -v Xvfb >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xvfb >/dev/null
grep -E "^(pytest|onnxruntime|onnx|bandit|detect-secrets|dask\\[distributed\\])==" requirements.txt > /tmp/matrix-requirements.txt
[ -x /opt/terraform-venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages /opt/terraform-venv
/opt/terraform-venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt \
  -r /tmp/matrix-requirements.txt
/opt/terraform-venv/bin/python -c "import numpy, osgeo.gdal_array, qgis.core, onnxruntime; from qgis.core import Qgis; print(\"QGIS\", Qgis.version(), \"Python\", __import__(\"sys\").version.split()[0], \"numpy\", numpy.__version__, \"GDAL\", __import__(\"osgeo.gdal\").gdal.__version__, \"onnxruntime\", onnxruntime.__version__)"
/opt/terraform-venv/bin/python scripts/build_plugin.py >/dev/null
/opt/terraform-venv/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/training --junitxml=/tmp/matrix.xml tests
'
set +e
bash scripts/qgis_chroot.sh run "$version" bash -c "$inner" 2>&1 | tee "out/matrix/qgis-$version.log"
status=${PIPESTATUS[0]}
set -e
cp "$root/tmp/matrix.xml" "out/matrix/qgis-$version.xml" 2>/dev/null || true
rm -rf "out/matrix/desktop-$version"  # the desktop test's screenshots under this QGIS, for a person to look at
cp -r "$root/src/out/desktop" "out/matrix/desktop-$version" 2>/dev/null || true
{
  grep -m1 '^QGIS ' "out/matrix/qgis-$version.log" || echo "QGIS $version (environment line missing)"
  grep -E '^(FAILED|ERROR) ' "out/matrix/qgis-$version.log" || true
  tail -1 "out/matrix/qgis-$version.log"
} >"out/matrix/qgis-$version.txt"
cat "out/matrix/qgis-$version.txt"
exit "$status"
