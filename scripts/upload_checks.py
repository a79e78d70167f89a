#!/usr/bin/env python3
"""plugins.qgis.org's 2026 security scan, run on a plugin folder or zip before upload.

The portal runs Bandit and detect-secrets on every uploaded zip (../shared/notes/qgis-plugins-2026.md has the
rule table). Its mapping, rule by rule:

* critical (blocks, cannot be waived): Bandit HIGH severity, and the rules below in CRITICAL (exec, eval,
  pickle, marshal, mktemp, yaml.load, shell=True, os.system, tarfile.extractall, permissive chmod,
  verify=False, hard-coded passwords B105-B107);
* warning (blocks unless the uploader ticks a waiver): Bandit MEDIUM, and the rules in WARNING (assert,
  /tmp paths, try/except/pass, subprocess calls, partial executable paths, md5/sha1, random, ...);
* disabled: B404 (import subprocess), B410, B411; other LOW findings are informational.
* detect-secrets: any finding blocks, high-entropy hex/base64 strings included.

    python scripts/upload_checks.py dist/terraform_plugin.zip     # prints every finding; exit 1 when blocked
"""

import json
import os
import subprocess
import sys
import tempfile
import zipfile

CRITICAL = {"B102", "B103", "B105", "B106", "B107", "B202", "B301", "B302", "B306", "B307", "B501", "B506",
            "B602", "B604", "B605"}
WARNING = {"B101", "B108", "B110", "B112", "B113", "B311", "B324", "B403", "B405", "B603", "B607", "B614"}
DISABLED = {"B404", "B410", "B411"}


def classify(result):
    rule, severity = result["test_id"], result["issue_severity"]
    if rule in DISABLED:
        return "disabled"
    if rule in CRITICAL or severity == "HIGH":
        return "critical"
    if rule in WARNING or severity == "MEDIUM":
        return "warning"
    return "info"


def _tool(name):
    """The console script next to this interpreter (the venv's), else the module form."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    return [script] if os.path.isfile(script) else [sys.executable, "-m", name.replace("-", "_")]


def bandit(folder):
    """Bandit findings as dicts with level (critical/warning/info/disabled), rule, file, line, text."""
    # Bandit is a development tool run on our own build output: a fixed argument list, no shell.
    done = subprocess.run([*_tool("bandit"), "-r", ".", "-f", "json", "-q"], cwd=folder, capture_output=True,
                          text=True)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"bandit failed (exit {done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    if report.get("errors"):
        raise RuntimeError(f"bandit could not parse: {report['errors']}")
    return [{"level": classify(r), "rule": r["test_id"], "file": os.path.normpath(r["filename"]),
             "line": r["line_number"], "text": r["issue_text"]} for r in report["results"]
            if classify(r) != "disabled"]  # the portal does not run those rules


def secrets(folder):
    """detect-secrets findings (every one blocks on the portal)."""
    done = subprocess.run([*_tool("detect-secrets"), "scan", "--all-files", "."], cwd=folder, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"detect-secrets failed (exit {done.returncode}): {done.stderr[-2000:]}")
    found = []
    for path, hits in json.loads(done.stdout)["results"].items():
        for hit in hits:
            found.append({"level": "critical", "rule": hit["type"], "file": os.path.normpath(path),
                          "line": hit["line_number"], "text": "detect-secrets"})
    return found


def scan(path):
    """All findings for a plugin folder or zip; the folder is scanned as extracted, like the portal does."""
    if os.path.isdir(path):
        return bandit(path) + secrets(path)
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp)  # zipfile drops absolute paths and '..' components
        return bandit(tmp) + secrets(tmp)


def blocking(findings):
    return [f for f in findings if f["level"] in ("critical", "warning")]


def describe(findings):
    return "\n".join(f"  {f['level']:8} {f['rule']:28} {f['file']}:{f['line']} {f['text']}" for f in findings)


def main(argv=None):
    argv = argv if argv is not None else sys.argv[1:]
    if len(argv) != 1:
        raise SystemExit("usage: upload_checks.py PLUGIN.zip|PLUGIN_DIR")
    findings = scan(argv[0])
    counts = {level: sum(f["level"] == level for f in findings) for level in ("critical", "warning", "info")}
    print(f"security scan of {argv[0]} (Bandit + detect-secrets, plugins.qgis.org rules): "
          f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info")
    if findings:
        print(describe(findings))
    return 1 if blocking(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
