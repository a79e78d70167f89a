"""Install or repair onnxruntime for QGIS's own Python, from inside QGIS (menu action or Processing algorithm).

What users of peer plugins report most is a failed dependency install, so every step here is checked and said:

1. the wheel (a local file, for offline machines, or the pinned version from the package index) must suit the
   Python QGIS runs and the numpy QGIS ships: ``--no-deps`` keeps QGIS's numpy, so the wheel's numpy
   requirement is checked against it instead of letting pip bring a second numpy;
2. pip (QGIS's Python, through ``QProcess``: no shell, no blocked event loop) installs into a staging folder
   next to the profile's dependency folder, so a failed or cancelled install leaves the working one alone;
3. a fresh interpreter imports it and opens the bundled model with the requested execution provider: the
   report says which provider actually loaded (CUDA fails to load silently when its libraries are missing);
4. only then the staging folder replaces the old one (kept as ``<folder>.previous`` until the next install).

Dask (optional: the Dask scheduler address parameter needs it) is installed the same way (staging folder, a
check in a separate process, then the swap) into its own folder, ``deps.dask_deps_dir()``, with its dependencies:
the plugin appends that folder to ``sys.path``, so where QGIS's Python already has one of them (yaml, jinja2,
packaging, ...) QGIS's copy stays in use, and the check runs Dask in that same order.

No ``qgis.gui`` and no iface: the algorithm runs headless too (``qgis_process run terraform:installdependencies``).
"""

import json
import os
import re
import shutil
import sys
import zipfile

from . import deps

CPU_PACKAGE = "onnxruntime"
GPU_PACKAGE = "onnxruntime-gpu"

# Run by QGIS's Python in a separate process: import from the staging folder only, report as one JSON line.
VERIFY_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy, onnxruntime as ort
report = {"version": ort.__version__, "file": ort.__file__, "numpy": numpy.__version__,
          "available": ort.get_available_providers(), "loaded": None, "error": None}
if sys.argv[2]:
    wanted = [p for p in ("CUDAExecutionProvider",) if sys.argv[3] == "1"] + ["CPUExecutionProvider"]
    try:
        report["loaded"] = ort.InferenceSession(sys.argv[2], providers=wanted).get_providers()[0]
    except Exception as exc:
        report["error"] = "%s: %s" % (type(exc).__name__, exc)
print("TERRAFORM-VERIFY " + json.dumps(report))
"""


# Run by QGIS's Python in a separate process: the new folder after QGIS's own modules, as the plugin adds it;
# a one-task local cluster; which of Dask's dependencies QGIS's Python provided. One JSON line.
DASK_VERIFY_SCRIPT = r"""
import importlib, json, os, sys
folder = os.path.abspath(sys.argv[1])
sys.path.append(folder)
import distributed
from distributed import Client, LocalCluster
report = {"version": distributed.__version__, "file": distributed.__file__, "result": None, "from_qgis": {}}
for name in ("yaml", "jinja2", "markupsafe", "packaging", "click", "tornado", "msgpack", "psutil", "cloudpickle",
             "toolz", "fsspec", "zict", "tblib", "sortedcontainers"):
    try:
        module = importlib.import_module(name)
    except ImportError:  # not a dependency of this Dask release
        continue
    if not os.path.abspath(module.__file__).startswith(folder + os.sep):
        report["from_qgis"][name] = getattr(module, "__version__", "?")
with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
    with Client(cluster) as client:
        report["result"] = client.submit(sum, [1, 2]).result()
print("TERRAFORM-VERIFY " + json.dumps(report))
"""


class InstallError(Exception):
    """A step failed; the message says which and what to do. The previous install is untouched."""


# -- versions ----------------------------------------------------------------------------------------------


def _version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def requirement_met(installed, spec):
    """``installed`` (e.g. "1.24.2") against a PEP 440 specifier list such as ">=1.21.6,<3" (common operators)."""
    have = _version_tuple(installed)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(>=|<=|==|!=|~=|>|<)\s*([\w.*]+)$", clause)
        if not m:
            continue  # an operator we do not model: pip would not check it either with --no-deps
        op, version = m.groups()
        if version.endswith(".*") and op in ("==", "!="):  # prefix match: ==1.24.* accepts 1.24.2
            prefix = _version_tuple(version[:-2])
            if (have[: len(prefix)] == prefix) != (op == "=="):
                return False
            continue
        want = _version_tuple(version)
        n = max(len(have), len(want))
        a, b = have + (0,) * (n - len(have)), want + (0,) * (n - len(want))
        ok = {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b, "==": a == b, "!=": a != b,
              "~=": a >= b}[op]
        if not ok:
            return False
    return True


def wheel_info(path):
    """Name, version, Python tags and Requires-Dist of a wheel file, or InstallError saying what is wrong."""
    name = os.path.basename(path)
    m = re.match(r"^([A-Za-z0-9_.]+)-([\w.+!]+?)(?:-\d[\w.]*)?-([\w.]+)-([\w.]+)-([\w.]+)\.whl$", name)
    if not m:
        raise InstallError(f"{path} is not a wheel file (expected <name>-<version>-<python>-<abi>-<platform>.whl).")
    project, version, python_tags, abi, platform = m.groups()
    project = project.replace("_", "-").lower()
    if project not in (CPU_PACKAGE, GPU_PACKAGE):
        raise InstallError(f"{name} is a wheel of {project}, not of onnxruntime or onnxruntime-gpu.")
    try:
        with zipfile.ZipFile(path) as zf:
            meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = zf.read(meta_name).decode("utf-8", "replace")
    except (zipfile.BadZipFile, StopIteration, OSError) as exc:
        raise InstallError(f"{path} cannot be read as a wheel ({type(exc).__name__}: {exc}).") from None
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    return {"project": project, "version": version, "python": python_tags.split("."), "abi": abi,
            "platform": platform, "requires": requires}


def check_wheel(info, python_version, numpy_version):
    """The wheel must be built for QGIS's Python and accept QGIS's numpy. Returns the requirements --no-deps skips."""
    tag = "cp%d%d" % python_version
    if tag not in info["python"] and "py3" not in info["python"]:
        raise InstallError(
            f"This wheel is for {', '.join(info['python'])}, but QGIS runs Python {python_version[0]}.{python_version[1]} "
            f"({tag}): download the {info['project']} {info['version']} wheel whose name contains -{tag}-."
        )
    skipped = []
    for requirement in info["requires"]:
        if ";" in requirement and "extra" in requirement.split(";", 1)[1]:
            continue  # optional extras
        m = re.match(r"([A-Za-z0-9_.-]+)\s*\(?([^;)]*)\)?", requirement)
        if not m:
            continue
        name, spec = m.group(1).lower().replace("_", "-"), m.group(2).strip()
        if name == "numpy":
            if numpy_version is None:
                raise InstallError("QGIS's Python has no numpy, which onnxruntime needs: repair the QGIS installation.")
            if spec and not requirement_met(numpy_version, spec):
                raise InstallError(
                    f"{info['project']} {info['version']} needs numpy {spec}, QGIS ships numpy {numpy_version}; "
                    "installing another numpy beside QGIS's would break GDAL's Python bindings. Choose an "
                    f"onnxruntime version that accepts numpy {numpy_version}."
                )
        else:
            skipped.append(name + (f" {spec}" if spec else ""))
    return skipped


# -- running QGIS's Python ---------------------------------------------------------------------------------


def run_python(python, args, on_line=None, cancelled=None, timeout_s=900):
    """Run ``python args...`` with QProcess (no shell); stream its output lines; return (exit code, output).

    QProcess rather than subprocess: it is what QGIS itself uses, needs no shell, and waitForFinished in short
    slices keeps the caller responsive to cancelling."""
    from qgis.PyQt.QtCore import QProcess

    proc = QProcess()
    proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
    proc.start(python, list(args))
    if not proc.waitForStarted(30000):
        raise InstallError(f"could not start {python}: {proc.errorString()}")
    chunks, pending, waited = [], "", 0
    while True:
        finished = proc.waitForFinished(250)
        data = bytes(proc.readAll()).decode("utf-8", "replace")
        if data:
            chunks.append(data)
            pending += data
            *lines, pending = pending.split("\n")
            for line in lines:
                if on_line and line.strip():
                    on_line(line.rstrip())
        if finished:
            break
        waited += 250
        if (cancelled and cancelled()) or waited > timeout_s * 1000:
            proc.kill()
            proc.waitForFinished(5000)
            raise InstallError("cancelled" if waited <= timeout_s * 1000 else f"{python} ran over {timeout_s} s")
    if on_line and pending.strip():
        on_line(pending.rstrip())
    if proc.exitStatus() != QProcess.ExitStatus.NormalExit:
        return -1, "".join(chunks)
    return proc.exitCode(), "".join(chunks)


def qgis_numpy_version():
    try:
        import numpy
    except ImportError:
        return None
    return numpy.__version__


# -- the install -------------------------------------------------------------------------------------------


def bundled_model():
    for folder in (os.path.join(deps.PLUGIN_DIR, "models"), os.path.join(os.path.dirname(deps.PLUGIN_DIR), "models")):
        path = os.path.join(folder, "terraform_generator.onnx")
        if os.path.isfile(path):
            return path
    return ""


def install(cuda=False, wheel=None, target=None, log=print, progress=lambda p: None, cancelled=None, python=None):
    """Install (or repair) onnxruntime for QGIS's Python; returns a dict report. Raises InstallError."""
    python = python or deps.python_executable()
    target = os.path.abspath(target or deps.user_deps_dir())
    package = GPU_PACKAGE if cuda else CPU_PACKAGE
    version = deps.ONNXRUNTIME_VERSION
    py = sys.version_info[:2]
    numpy_version = qgis_numpy_version()
    log(f"QGIS's Python: {python} (Python {py[0]}.{py[1]}), numpy {numpy_version} (kept: --no-deps)")
    log(f"Target folder: {target}")
    progress(5)

    skipped = []
    if wheel:
        if not os.path.isfile(wheel):
            raise InstallError(f"Wheel file not found: {wheel}")
        info = wheel_info(wheel)
        if cuda and info["project"] != GPU_PACKAGE:
            raise InstallError(f"CUDA was requested but {os.path.basename(wheel)} is the CPU build: choose an "
                               f"onnxruntime_gpu-…-cp{py[0]}{py[1]}-….whl file, or untick CUDA.")
        package, version = info["project"], info["version"]
        skipped = check_wheel(info, py, numpy_version)
        source = ["--no-index", wheel]
        log(f"Installing {package} {version} from {wheel} (offline)")
    else:
        source = [f"{package}=={version}"]
        log(f"Installing {package}=={version} from the package index (pip's own configuration: index, proxy, "
            "certificates)")
    if version != deps.ONNXRUNTIME_VERSION:
        log(f"Note: the plugin is tested with onnxruntime {deps.ONNXRUNTIME_VERSION}; this wheel is {version}.")

    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    code, output = run_python(python, ["-m", "pip", "--version"])
    if code != 0:
        raise InstallError(
            f"QGIS's Python ({python}) has no pip: install it (Debian/Ubuntu: sudo apt install python3-pip; "
            "Windows/macOS installers ship it), then run this again.\n" + output.strip()[-500:]
        )
    progress(10)
    args = ["-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
            "--no-warn-script-location", "--progress-bar", "off", "--target", staging, *source]
    log("pip " + " ".join(args[2:]))
    steps = {"Collecting": 20, "Downloading": 30, "Processing": 40, "Installing": 60, "Successfully": 75}

    def on_line(line):
        log("  " + line)
        for word, percent in steps.items():
            if line.lstrip().startswith(word):
                progress(percent)

    try:
        code, output = run_python(python, args, on_line=on_line, cancelled=cancelled)
    except InstallError:  # cancelled or timed out: leave no half-filled staging folder behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"pip failed (exit code {code}); the previous install, if any, is unchanged. Last "
                           "lines:\n" + "\n".join(output.strip().splitlines()[-8:]))
    shutil.rmtree(os.path.join(staging, "bin"), ignore_errors=True)  # console scripts bound to a temporary path
    if not wheel:  # check what the index gave, as we check a local wheel before installing it
        info = installed_info(staging)
        skipped = check_installed(info, py, numpy_version, staging)
    progress(80)

    log("Verifying in a separate Python process (import, then open the bundled model)")
    try:
        code, output = run_python(python, ["-c", VERIFY_SCRIPT, staging, bundled_model(), "1" if cuda else "0"],
                                  cancelled=cancelled, timeout_s=300)
    except InstallError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    found = re.search(r"^TERRAFORM-VERIFY (.*)$", output, re.M)
    if code != 0 or not found:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"{package} {version} installed but does not import with QGIS's Python; the previous "
                           "install, if any, is unchanged:\n" + "\n".join(output.strip().splitlines()[-8:]))
    check = json.loads(found.group(1))
    if not os.path.abspath(check["file"]).startswith(os.path.abspath(staging) + os.sep):
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"the verification imported onnxruntime from {check['file']}, not from the new "
                           "install: another onnxruntime shadows it in QGIS's Python; remove that one first.")
    if check["error"]:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"{package} {version} imports but cannot open the bundled model: {check['error']}")
    progress(90)

    previous = target + ".previous"
    if os.path.isdir(target):
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(staging, target)
    deps.add_dependency_paths()

    provider = check["loaded"] or "(no bundled model to try)"
    report = {
        "package": package, "version": check["version"], "target": target, "python": python,
        "numpy": check["numpy"], "available_providers": check["available"], "execution_provider": provider,
        "skipped_requirements": skipped, "source": wheel or "package index",
    }
    log(f"Installed {package} {check['version']} into {target}")
    log(f"numpy {check['numpy']} (QGIS's) kept; not installed (--no-deps, not needed to run models): "
        f"{', '.join(skipped) or 'nothing'}")
    log(f"Execution providers available: {', '.join(check['available'])}; the bundled model loads on: {provider}")
    if cuda and provider != "CUDAExecutionProvider":
        log("WARNING: CUDA was requested but did not load: onnxruntime-gpu needs the CUDA and cuDNN libraries of its "
            "release on the library path; until then the CPU runs the model.")
    if "onnxruntime" in sys.modules:
        log("onnxruntime was already loaded in this QGIS session: restart QGIS to use the new install.")
    progress(100)
    return report


def installed_info(folder):
    for entry in os.listdir(folder):
        m = re.match(r"(onnxruntime(?:_gpu)?)-([\w.+]+)\.dist-info$", entry)
        if m:
            with open(os.path.join(folder, entry, "METADATA"), encoding="utf-8", errors="replace") as f:
                requires = [line.split(":", 1)[1].strip() for line in f if line.startswith("Requires-Dist:")]
            return {"project": m.group(1).replace("_", "-"), "version": m.group(2),
                    "python": ["cp%d%d" % sys.version_info[:2]], "requires": requires}
    raise InstallError(f"pip reported success but {folder} holds no onnxruntime distribution.")


def check_installed(info, py, numpy_version, staging):
    try:
        return check_wheel(info, py, numpy_version)
    except InstallError:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- Dask (optional) ---------------------------------------------------------------------------------------


def install_dask(wheels=None, target=None, log=print, progress=lambda p: None, cancelled=None, python=None):
    """Install (or repair) the pinned dask[distributed] and its dependencies for QGIS's Python into its own
    folder; ``wheels``: a folder of wheels to install from offline. Returns a dict report; raises InstallError."""
    from .cluster.runner import DASK_REQUIREMENT  # the runner imports no dask (nor onnxruntime) at import time

    python = python or deps.python_executable()
    target = os.path.abspath(target or deps.dask_deps_dir())
    version = DASK_REQUIREMENT.split("==", 1)[1]
    log(f"Dask for QGIS's Python: {DASK_REQUIREMENT} into {target}")
    if wheels:
        if not os.path.isdir(wheels):
            raise InstallError(f"Dask wheel folder not found: {wheels}")
        source = ["--no-index", "--find-links", wheels]
        log(f"Installing from the wheels in {wheels} (offline)")
    else:
        source = []
        log("Installing from the package index (pip's own configuration: index, proxy, certificates)")
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    args = ["-m", "pip", "install", "--only-binary=:all:", "--disable-pip-version-check", "--no-warn-script-location",
            "--progress-bar", "off", "--target", staging, *source, DASK_REQUIREMENT]
    log("pip " + " ".join(args[2:]))
    progress(10)
    try:
        code, output = run_python(python, args, on_line=lambda line: log("  " + line), cancelled=cancelled)
    except InstallError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if code != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"pip failed (exit code {code}); the previous Dask install, if any, is unchanged. Last "
                           "lines:\n" + "\n".join(output.strip().splitlines()[-8:]))
    shutil.rmtree(os.path.join(staging, "bin"), ignore_errors=True)  # console scripts bound to a temporary path
    progress(70)

    log("Verifying in a separate Python process (import after QGIS's own modules, then a one-task local cluster)")
    try:
        code, output = run_python(python, ["-c", DASK_VERIFY_SCRIPT, staging], cancelled=cancelled, timeout_s=300)
    except InstallError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    found = re.search(r"^TERRAFORM-VERIFY (.*)$", output, re.M)
    problem = None
    if code != 0 or not found:
        problem = "it does not run with QGIS's Python:\n" + "\n".join(output.strip().splitlines()[-8:])
    else:
        check = json.loads(found.group(1))
        if not os.path.abspath(check["file"]).startswith(os.path.abspath(staging) + os.sep):
            problem = (f"QGIS's Python already has distributed {check['version']} ({check['file']}), which comes "
                       f"first; the cluster needs {version}: remove that one (or run from the command line).")
        elif check["version"] != version or check["result"] != 3:
            problem = f"distributed {check['version']} installed, {version} expected (local cluster: {check['result']})"
    if problem:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(f"Dask installed but {problem} The previous Dask install, if any, is unchanged.")
    progress(90)

    previous = target + ".previous"
    if os.path.isdir(target):
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(staging, target)
    deps.add_dependency_paths()
    kept = ", ".join(f"{name} {v}" for name, v in sorted(check["from_qgis"].items())) or "nothing"
    log(f"Installed dask[distributed] {check['version']} into {target}")
    log(f"Dask's dependencies that QGIS's Python already has, kept in use (the folder comes after them): {kept}")
    if "distributed" in sys.modules:
        log("dask.distributed was already loaded in this QGIS session: restart QGIS to use the new install.")
    progress(100)
    return {"version": check["version"], "target": target, "kept_from_qgis": check["from_qgis"],
            "source": wheels or "package index"}
