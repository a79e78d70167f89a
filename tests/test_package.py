"""`make package`'s zip obeys plugins.qgis.org's rules (checked on the zip itself, independently of the script)."""

import configparser
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BYTES = 25_000_000


def test_package_zip(tmp_path):
    src = tmp_path / "build" / "terraform_plugin"
    out = tmp_path / "dist" / "terraform_plugin.zip"
    py = sys.executable
    subprocess.run([py, "scripts/build_plugin.py", "--dest", str(src), "--no-deps"], cwd=ROOT, check=True,
                   capture_output=True)
    # Stray bytecode and a deps folder in the build must not reach the zip.
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"x")
    (src / "deps" / "py3.11").mkdir(parents=True)
    (src / "deps" / "py3.11" / "onnxruntime.py").write_text("")
    done = subprocess.run([py, "scripts/package_plugin.py", "--src", str(src), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    assert 0 < os.path.getsize(out) <= MAX_BYTES
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        meta_text = zf.read("terraform_plugin/metadata.txt").decode("utf-8")
    assert {n.split("/", 1)[0] for n in names} == {"terraform_plugin"}
    for required in ("__init__.py", "metadata.txt", "LICENSE", "algorithm.py", "core/pipeline.py", "icon.svg"):
        assert f"terraform_plugin/{required}" in names
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith("terraform_plugin/deps/")]
    model = os.path.join(ROOT, "models", "terraform_generator.onnx")
    if os.path.isfile(model) and os.path.getsize(model) < MAX_BYTES // 2:
        assert "terraform_plugin/models/terraform_generator.onnx" in names

    meta = configparser.ConfigParser()
    meta.read_string(meta_text)
    general = meta["general"]
    for key in ("name", "description", "about", "version", "qgisMinimumVersion", "author", "email", "tracker",
                "repository", "hasProcessingProvider", "tags", "changelog"):
        assert general.get(key, "").strip(), key
    assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
    from terraform_plugin.core.version import VERSION

    assert general["version"] == VERSION
