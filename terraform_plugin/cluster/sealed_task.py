"""Dask tasks the scheduler can route without importing this package (nor numpy, GDAL or onnxruntime).

Dask's scheduler unpickles every task graph it receives: a task naming ``terraform_plugin.cluster.tasks.compute_part``
with a plan of this package's classes makes it import ``terraform_plugin`` and, through it, numpy and GDAL
("Error during deserialization of the task graph" where they are missing). So the call is sealed: the
function travels as its import name and the arguments as bytes of Dask's own serialization, inside nested
tasks of Dask's task spec, whose functions (``pkgutil.resolve_name``, ``distributed.protocol.deserialize``,
``dask.utils.apply``) every Dask installation has. Only a worker opens it. A cluster's scheduler then needs
``dask[distributed]`` alone, at the client's and the workers' version.
"""

import pkgutil
import sys


def import_name(function) -> str:
    """``module:qualname`` by which a worker imports ``function``; for a module run as ``python -m package.module``
    (``__main__`` here), the module's own name."""
    module = function.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:
            raise ValueError(f"{function!r} is in a script run by path: workers cannot import it")
        return f"{spec.name}:{function.__qualname__}"
    name = f"{module}:{function.__qualname__}"
    try:
        found = pkgutil.resolve_name(name)
    except (ValueError, ImportError, AttributeError):  # a local function, a lambda, a module not importable
        found = None
    if found is not function:
        raise ValueError(f"{function!r} cannot be imported by its name {name}: workers could not run it")
    return name


def sealed_call(function, *args):
    """``(callable, *args)`` for ``client.submit`` that runs ``function(*args)`` on a worker.

    ``function`` must be a module-level function of an installed module (workers import it by name)."""
    from dask.task_spec import Task
    from dask.utils import apply
    from distributed.protocol import deserialize, serialize

    name = import_name(function)
    header, frames = serialize(args, serializers=("pickle",), on_error="raise")
    return (
        apply,
        Task(None, pkgutil.resolve_name, name),
        Task(None, deserialize, header, [bytes(frame) for frame in frames]),
    )
