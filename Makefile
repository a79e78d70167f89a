# Terraform DEM. A fresh machine needs `make demo` and `make test`; both set up first.
PY := .venv/bin/python
STAMP := .venv/.setup-stamp
export QT_QPA_PLATFORM := offscreen

.PHONY: setup demo test bench plugin package demo-mars clean matrix matrix-3.40 matrix-3.44

setup: $(STAMP)
$(STAMP): requirements.txt constraints.txt pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

clean:
	rm -rf build dist out .pytest_cache

# Deployable plugin folder build/terraform_plugin/ (+ onnxruntime for QGIS's own Python).
plugin: $(STAMP)
	$(PY) scripts/build_plugin.py

# dist/terraform_plugin.zip, checked against plugins.qgis.org's rules.
package: plugin
	$(PY) scripts/package_plugin.py

test: $(STAMP) plugin
	$(PY) -m pytest -q tests

# The main job on a real place (SRTM crop of Aconcagua, data/dem/) through the real algorithm and the bundled
# model -> out/. `.venv/bin/python scripts/demo.py --synthetic` runs the procedural DEM instead.
demo: $(STAMP) plugin
	$(PY) scripts/demo.py

# Mars MOLA crops (Tharsis, Valles Marineris) committed in data/dem/ -> out/mars/.
demo-mars: $(STAMP) plugin
	$(PY) scripts/demo_mars.py

# Throughput and peak memory -> bench/results.json; Dask runs -> bench/dask_results.json (both in bench/README.md).
bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/dask_bench.py

# The version matrix: plugin and engine tests under QGIS 3.40 LTR (bookworm-backports) and 3.44 LTR
# (trixie-backports, Python 3.13, numpy 2), each in a Debian chroot cached under /var/cache/terraform-dem (built
# from nothing when absent; needs root and the network) -> out/matrix/. QGIS 3.22 is the host's: `make test`.
matrix-3.40 matrix-3.44:
	bash scripts/matrix.sh $(subst matrix-,,$@)

matrix: matrix-3.40 matrix-3.44
