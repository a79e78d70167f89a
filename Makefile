# Terraform DEM. A fresh machine needs `make demo` and `make test`; both set up first.
PY := .venv/bin/python
STAMP := .venv/.setup-stamp
export QT_QPA_PLATFORM := offscreen

.PHONY: setup demo test bench plugin package demo-mars clean

setup: $(STAMP)
$(STAMP): requirements.txt constraints.txt scripts/setup.sh
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

# The main job on a synthetic DEM through the real algorithm and the bundled model -> out/.
demo: $(STAMP) plugin
	$(PY) scripts/demo.py

# Mars MOLA layers from ../shared/data/dem/mars (skips with a message when absent) -> out/.
demo-mars: $(STAMP) plugin
	$(PY) scripts/demo_mars.py

# Throughput and peak memory -> bench/results.json; Dask runs -> bench/dask_results.json (both in bench/README.md).
bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/dask_bench.py
