"""Planet-scale runs on a Dask cluster: the plan's column stripes as Dask tasks, one GeoTIFF part each,
assembled into the output a local run would write (same pixels, overviews, metadata).

- ``runner``: the client side - ``run_on_dask`` checks the request, starts or reaches the cluster, submits the
  parts, records each as it ends (a rerun resumes) and assembles them;
- ``tasks``: what runs on a worker - one part of the plan, with one onnxruntime session per worker process;
- ``sealed_task``: how a task travels so that the scheduler needs Dask alone, not this package;
- ``cli``: the command line, ``terraform-dem`` (also ``python -m terraform_plugin.cluster``).

The parts, their manifest and the assembly are ``core.parts`` (no Dask there). No QGIS here; ``dask`` is
imported only when a run starts, so the QGIS plugin works without it.
"""

from ..core.errors import TerraformError


class ClusterError(TerraformError):
    """The Dask cluster cannot be reached or used (scheduler down, no workers, files it cannot see)."""
