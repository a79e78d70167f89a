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
