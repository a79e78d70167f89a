#!/usr/bin/env python3
"""`make plugin`: the deployable folder build/terraform_plugin/, ready for QGIS_PLUGINPATH=build.

Contents: the terraform_plugin package (no __pycache__/*.pyc), metadata.txt, LICENSE, the bundled model and
its card when present, and onnxruntime for QGIS's own Python in deps/py<X.Y> (pinned, --no-deps so QGIS's
numpy stays in charge). Re-running is cheap: the package is re-synced and onnxruntime is only installed
when missing or at another version.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "terraform_plugin"
MODEL_FILES = ("terraform_generator.onnx", "MODEL_CARD.md")
QGIS_PYTHON = "/usr/bin/python3"


def pinned_onnxruntime(requirements=os.path.join(ROOT, "requirements.txt")):
    with open(requirements, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*onnxruntime\s*==\s*([\w.]+)", line)
            if m:
                return m.group(1)
    raise SystemExit("requirements.txt pins no onnxruntime==<version>")


def copy_package(dest):
    """Fresh copy of the package (drops files deleted from the source), leaving deps/ in place throughout so a
    QGIS already using this build (another shell, a test session) never sees onnxruntime vanish."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "deps", "models", ".pytest_cache")
    os.makedirs(dest, exist_ok=True)
    for entry in os.listdir(dest):
        if entry != "deps":
            path = os.path.join(dest, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    shutil.copytree(os.path.join(ROOT, PACKAGE), dest, ignore=ignore, dirs_exist_ok=True)
    shutil.copy2(os.path.join(ROOT, "metadata.txt"), dest)
    shutil.copy2(os.path.join(ROOT, "LICENSE"), dest)
    copied = []
    for name in MODEL_FILES:
        src = os.path.join(ROOT, "models", name)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dest, "models"), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, "models", name))
            copied.append(name)
    return copied


def python_tag(python):
    out = subprocess.run(
        [python, "-c", "import sys; print('py%d.%d' % sys.version_info[:2])"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def installed_version(target):
    for entry in os.listdir(target) if os.path.isdir(target) else ():
        m = re.match(r"onnxruntime-([\w.]+)\.dist-info$", entry)
        if m and os.path.isdir(os.path.join(target, "onnxruntime")):
            return m.group(1)
    return None


WHEELS = os.path.join(ROOT, "build", "wheels")


def onnxruntime_wheel(python, version, folder=WHEELS):
    """The onnxruntime wheel for ``python`` in build/wheels/, downloaded once (with that Python, so the tags
    match). The offline-install test and the deps/ install both use this file."""
    cp = "cp" + python_tag(python)[2:].replace(".", "")
    pattern = re.compile(rf"onnxruntime-{re.escape(version)}-{cp}-{cp}-.*\.whl$")
    found = [n for n in sorted(os.listdir(folder)) if pattern.match(n)] if os.path.isdir(folder) else []
    if not found:
        print(f"downloading the onnxruntime=={version} wheel for {python} into {os.path.relpath(folder, ROOT)}")
        subprocess.run([python, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "-d", folder, f"onnxruntime=={version}"], check=True)
        found = [n for n in sorted(os.listdir(folder)) if pattern.match(n)]
    if not found:
        raise SystemExit(f"pip downloaded no onnxruntime {version} wheel for {cp} into {folder}")
    return os.path.join(folder, found[-1])


def install_onnxruntime(dest, python, version):
    tag = python_tag(python)
    target = os.path.join(dest, "deps", tag)
    wheel = onnxruntime_wheel(python, version)
    have = installed_version(target)
    if have == version:
        print(f"onnxruntime {version} already in {os.path.relpath(target, ROOT)}")
        return target
    shutil.rmtree(target, ignore_errors=True)
    print(f"installing onnxruntime=={version} for {python} into {os.path.relpath(target, ROOT)}")
    # --target is allowed on Debian's externally managed Python; --no-deps keeps QGIS's numpy.
    cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
           "--no-index", "--target", target, wheel]
    subprocess.run(cmd, check=True)
    shutil.rmtree(os.path.join(target, "bin"), ignore_errors=True)  # console scripts bound to the wrong prefix
    check = subprocess.run(
        [python, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import onnxruntime; print(onnxruntime.__version__)",
         target], capture_output=True, text=True, cwd="/",
    )
    if check.returncode != 0 or check.stdout.strip() != version:
        raise SystemExit(f"onnxruntime installed in {target} does not import with {python}:\n{check.stderr}")
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=os.path.join(ROOT, "build", PACKAGE))
    parser.add_argument("--python", default=QGIS_PYTHON, help="QGIS's Python (default %(default)s)")
    parser.add_argument("--no-deps", action="store_true", help="skip onnxruntime (a plugin as users install it)")
    args = parser.parse_args()
    dest = os.path.abspath(args.dest)
    models = copy_package(dest)
    print(f"plugin: {os.path.relpath(dest, ROOT)} (model files: {', '.join(models) or 'none yet: models/ is empty'})")
    if args.no_deps:
        shutil.rmtree(os.path.join(dest, "deps"), ignore_errors=True)
    elif not os.path.exists(args.python):
        print(f"warning: {args.python} not found; onnxruntime not bundled (the algorithm will say how to install it)")
    else:
        install_onnxruntime(dest, args.python, pinned_onnxruntime())
    print(f"use it: QGIS_PLUGINPATH={os.path.dirname(dest)} qgis_process.bin plugins enable {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
