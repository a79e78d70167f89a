"""A sealed task as the scheduler receives it (pickled by Dask's own dumps, as Client.submit sends the graph):
a Python that cannot import terraform_plugin, numpy or GDAL reads it, where the plain task fails; a worker runs it.
test_cluster_recipe.py checks the same with real processes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from dask.task_spec import Task
from distributed.protocol.pickle import dumps

from terraform_plugin.core.request import TerraformRequest, check_request
from terraform_plugin.cluster.sealed_task import import_name, sealed_call

# The scheduler's Python: these imports fail there, as on a machine with dask[distributed] alone.
SCHEDULER = """
import sys
for name in ("terraform_plugin", "training", "numpy", "osgeo", "onnxruntime"):
    sys.modules[name] = None
from distributed.protocol.pickle import loads
task = loads(open(sys.argv[1], "rb").read())
print("read", task.key, sorted(task.dependencies))
"""


def scheduler_reads(tmp_path, task):
    path = tmp_path / "graph.pickle"
    path.write_bytes(dumps(task))
    return subprocess.run([sys.executable, "-c", SCHEDULER, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=str(tmp_path), env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


@pytest.fixture
def request_(tmp_path):
    return TerraformRequest(str(tmp_path / "dem.tif"), str(tmp_path / "out.tif"), "model.onnx")


@pytest.mark.parametrize("call", ["request", "array"])
def test_the_scheduler_reads_a_sealed_task_without_our_modules(tmp_path, request_, call):
    """One of the package's functions with one of its classes, and numpy's with an array: read sealed, not plain."""
    function, args = (check_request, (request_,)) if call == "request" else (np.sum, (np.arange(10),))
    read = scheduler_reads(tmp_path, Task("part-0", *sealed_call(function, *args)))
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == ["read", "part-0", "[]"]
    # The plain task names them: that Python cannot read it (the error the cluster showed).
    plain = scheduler_reads(tmp_path, Task("part-0", function, *args))
    blocked = "terraform_plugin" if call == "request" else "numpy"
    assert plain.returncode != 0 and f"'{blocked}' is not a package" in plain.stderr, plain.stderr


def test_a_worker_runs_the_sealed_call(request_):
    assert Task("part-0", *sealed_call(check_request, request_))() == check_request(request_)
    assert Task("part-1", *sealed_call(np.sum, np.arange(10)))() == 45


def test_only_importable_functions_can_be_sealed():
    def local():
        pass

    with pytest.raises(ValueError, match="cannot be imported by its name"):
        sealed_call(local)
    with pytest.raises(ValueError, match="cannot be imported by its name"):
        sealed_call(lambda: None)
    assert import_name(check_request) == "terraform_plugin.core.request:check_request"
