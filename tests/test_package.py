"""`make package`'s zip obeys plugins.qgis.org's rules (checked on the zip itself, independently of the script):
the metadata rules and the portal's security scan (Bandit with its rule table, detect-secrets)."""

import configparser
import os
import re
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_BYTES = 25_000_000
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import upload_checks  # noqa: E402


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("package")
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
    assert "security scan: 0 blocking" in done.stdout
    return out


def test_package_zip(package_zip):
    out = package_zip
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
    assert general["qgisMaximumVersion"] == "4.99"  # listed for QGIS 4 (supportsQt6 is ignored since 2026)
    assert "supportsQt6" not in general
    for key in ("about", "description"):  # rendered as HTML by the Plugin Manager
        assert not re.search(r"<[^>]*>", general[key]), key
    assert "Install/repair Terraform DEM dependencies" in general["about"]
    assert "Terraform › Terrain › Terraform DEM" in general["about"]
    from terraform_plugin.core.version import VERSION

    assert general["version"] == VERSION


def test_security_scan_of_the_zip_reports_nothing(package_zip):
    findings = upload_checks.scan(str(package_zip))
    assert findings == [], upload_checks.describe(findings)
    with zipfile.ZipFile(package_zip) as zf:
        sources = [n for n in zf.namelist() if n.endswith(".py")]
    assert len(sources) > 10  # the scan saw the package


def test_the_scan_blocks_what_the_portal_blocks(tmp_path):
    """A folder with one instance of each kind: every one is found and classified as the portal does."""
    pkg = tmp_path / "plugin"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f(x):\n    assert x > 0\n    return x\n")
    (pkg / "b.py").write_text("def g(code):\n    exec(code)\n")
    (pkg / "c.py").write_text("import subprocess\n\n\ndef h(p):\n    subprocess.run(['pip', 'install', p])\n")
    (pkg / "d.txt").write_text("sha256=3f786850e387550fdab836ed7e6dc881de23001b3f786850e387550fdab836ed\n")
    found = {(f["file"], f["rule"], f["level"]) for f in upload_checks.scan(str(pkg))}
    assert ("a.py", "B101", "warning") in found
    assert ("b.py", "B102", "critical") in found
    assert ("c.py", "B603", "warning") in found and ("c.py", "B607", "warning") in found
    assert not [f for f in found if f[1] == "B404"]  # import subprocess: disabled on the portal
    assert any(f[0] == "d.txt" and "High Entropy" in f[1] and f[2] == "critical" for f in found), found
