"""Make onnxruntime importable inside QGIS's own Python, and say exactly how to install it when it is not.

QGIS runs plugins in its own interpreter (on Debian /usr/bin/python3 with Debian's numpy), not in any venv.
onnxruntime is looked up in two folders keyed to that interpreter's version, so a wheel built for another
Python is never picked up:

* ``<plugin dir>/deps/py<major>.<minor>`` — filled by ``make plugin`` for a development build;
* ``<QGIS settings dir>/python/dependencies/terraform_dem/py<major>.<minor>`` — where users install it
  (survives plugin upgrades, needs no admin rights).

Installs use ``--no-deps`` so numpy stays the one QGIS ships (onnxruntime 1.31.1 imports with Debian's numpy
1.24.2; a second numpy in front of QGIS's would break ``osgeo.gdal_array``).
"""

import importlib
import os
import shutil
import sys

# Kept equal to requirements.txt by tests/plugin/test_registration.py.
ONNXRUNTIME_VERSION = "1.31.1"
DEPS_PACKAGE = "terraform_dem"  # folder name under <settings>/python/dependencies/

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def python_tag() -> str:
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def plugin_deps_dir() -> str:
    return os.path.join(PLUGIN_DIR, "deps", python_tag())


def user_deps_dir() -> str:
    """The per-profile folder a user can write to; the one the install hint targets."""
    try:
        from qgis.core import QgsApplication

        settings = QgsApplication.qgisSettingsDirPath()
    except Exception:  # outside QGIS (plain Python tools): no profile
        settings = ""
    if not settings:
        settings = os.path.join(os.path.expanduser("~"), ".local", "share", "QGIS", "QGIS3", "profiles", "default")
    return os.path.join(os.path.normpath(settings), "python", "dependencies", DEPS_PACKAGE, python_tag())


def dependency_dirs() -> list:
    return [plugin_deps_dir(), user_deps_dir()]


def dask_deps_dir() -> str:
    """Dask's folder, beside onnxruntime's: optional (the Dask scheduler address parameter needs it)."""
    return os.path.join(os.path.dirname(user_deps_dir()), f"dask-{python_tag()}")


def add_dependency_paths() -> list:
    """Prepend the existing onnxruntime folders to sys.path and append Dask's (idempotent); return those added.

    Dask's folder goes last: it holds Dask's own dependencies too (yaml, jinja2, packaging, ...), and where
    QGIS's Python already has one of those, QGIS's copy must stay the one QGIS and other plugins import."""
    added = []
    # Reversed insertion at 0 keeps the plugin's own folder first.
    for folder in reversed(dependency_dirs()):
        if os.path.isdir(folder) and folder not in sys.path:
            sys.path.insert(0, folder)
            added.append(folder)
    dask = dask_deps_dir()
    if os.path.isdir(dask) and dask not in sys.path:
        sys.path.append(dask)
        added.append(dask)
    if added:
        importlib.invalidate_caches()
    return added


def python_executable() -> str:
    """The interpreter QGIS runs plugins with, as a command a user can paste.

    ``sys.executable`` cannot be trusted inside QGIS: the embedded Python sets it from PATH (measured under
    qgis_process.bin here: a pyenv shim, i.e. another Python) or to the QGIS binary. The installation's own
    prefix is reliable, so look there first, then fall back to the version-named command on PATH.
    """
    major, minor = sys.version_info[:2]
    prefix = getattr(sys, "base_exec_prefix", sys.exec_prefix)  # a venv's base: the Python QGIS was built on
    candidates = [
        os.path.join(prefix, "python.exe"),  # Windows (OSGeo4W, standalone installers)
        os.path.join(prefix, "python3.exe"),
        os.path.join(prefix, "bin", f"python{major}.{minor}"),  # Linux, macOS bundle
        os.path.join(prefix, "bin", f"python{major}"),
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    return shutil.which(f"python{major}.{minor}") or f"python{major}.{minor}"


def install_command() -> str:
    return (
        f'"{python_executable()}" -m pip install --no-deps --target "{user_deps_dir()}" '
        f"onnxruntime=={ONNXRUNTIME_VERSION}"
    )


def dask_install_command(requirement: str) -> str:
    return f'"{python_executable()}" -m pip install --target "{dask_deps_dir()}" "{requirement}"'


def dask_missing_message(reason: str, requirement: str) -> str:
    return (
        f"Running on a Dask cluster needs dask.distributed, which QGIS's Python {sys.version_info.major}."
        f"{sys.version_info.minor} cannot import ({reason}). Install it from inside QGIS: Plugins › "
        "Terraform DEM › Install/repair Terraform DEM dependencies with \"Also install Dask\" ticked (headless: "
        "qgis_process run terraform:installdependencies -- DASK=true, with DASK_WHEELS=<folder of wheels> when "
        "offline). By hand, "
        f"the same install is:\n\n    {dask_install_command(requirement)}\n\nthen restart QGIS. Or leave the Dask "
        "scheduler address empty to run on this machine."
    )


def missing_message(reason: str = "") -> str:
    why = f" ({reason})" if reason else ""
    return (
        f"Terraform DEM needs onnxruntime, which cannot be imported by QGIS's Python "
        f"{sys.version_info.major}.{sys.version_info.minor}{why}. Install it from inside QGIS: Plugins › "
        "Terraform DEM › Install/repair Terraform DEM dependencies (or Processing Toolbox › Terraform › Setup; "
        "headless: qgis_process run terraform:installdependencies, with WHEEL=<file.whl> when offline). "
        f"By hand, the same install is:\n\n"
        f"    {install_command()}\n\n"
        f"then restart QGIS. (--no-deps keeps the numpy that QGIS ships; the plugin also looks in "
        f'"{plugin_deps_dir()}".)'
    )


def installed_distribution():
    """(project, version, folder) of the onnxruntime distribution the dependency folders hold, else None."""
    for folder in dependency_dirs():
        if not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            name, sep, rest = entry.partition("-")
            if sep and entry.endswith(".dist-info") and name in ("onnxruntime", "onnxruntime_gpu"):
                return name.replace("_", "-"), rest[: -len(".dist-info")], folder
    return None


def cuda_requested() -> bool:
    """The user installed onnxruntime-gpu, i.e. asked for CUDA."""
    found = installed_distribution()
    return found is not None and found[0] == "onnxruntime-gpu"


def onnxruntime_problem():
    """None when onnxruntime imports, else the import error's text."""
    add_dependency_paths()
    try:
        import onnxruntime  # noqa: F401
    except Exception as exc:  # ImportError, or a numpy ABI clash raising something else
        return f"{type(exc).__name__}: {exc}"
    return None
