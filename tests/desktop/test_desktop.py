"""The QGIS desktop, as a user has it: a fresh profile with the plugin enabled, the algorithm's dialog, a run.

Starts ``qgis`` under Xvfb with ``--code tests/desktop/desktop_driver.py`` (which drives the GUI from inside and
writes what it saw to result.json), then asserts on that. Screenshots (dialog, map, main window) stay in
out/desktop/ for a person to look at. Skips, saying why, where Xvfb or the QGIS desktop is absent.
"""

import configparser
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "desktop_driver.py")
SCREENSHOTS = os.path.join(ROOT, "out", "desktop")
QGIS = shutil.which("qgis") or "/usr/bin/qgis"


def start_xvfb(exe):
    """Xvfb on the first display number that works: a lock file is not the only sign of a taken display (another
    chroot's Xvfb holds the abstract socket without a lock file here), so try the next one when it exits."""
    for n in range(90, 140):
        if os.path.exists(f"/tmp/.X{n}-lock") or os.path.exists(f"/tmp/.X11-unix/X{n}"):
            continue
        proc = subprocess.Popen([exe, f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                return proc, f":{n}"
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        else:
            proc.terminate()
            proc.wait(10)
    pytest.skip("Xvfb did not start on any display :90-:139")


@pytest.fixture
def xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb): the desktop test needs a display")
    if not os.path.exists(QGIS):
        pytest.skip("the QGIS desktop (qgis) is not installed")
    proc, display = start_xvfb(exe)
    yield display
    proc.terminate()
    proc.wait(10)


def fresh_profile(path, plugin_name="terraform_plugin"):
    """A new profile folder with only our plugin enabled and first-run prompts off."""
    ini_dir = path / "profiles" / "default" / "QGIS"
    ini_dir.mkdir(parents=True)
    ini = configparser.ConfigParser()
    ini.optionxform = str
    ini["PythonPlugins"] = {plugin_name: "true"}
    ini["qgis"] = {"checkVersion": "false", "showTips": "false", "allowVersionCheck": "false"}
    ini["migration"] = {"fileVersion": "2", "settings": "true"}
    with open(ini_dir / "QGIS3.ini", "w") as f:
        ini.write(f, space_around_delimiters=False)
    return path


def test_desktop_dialog_run_and_result_layer(xvfb, built_plugin, tmp_path, kit):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    for name in os.listdir(SCREENSHOTS):  # only this run's pictures
        os.remove(os.path.join(SCREENSHOTS, name))
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(280, 300))
    result = tmp_path / "terraformed.tif"
    profiles = fresh_profile(tmp_path / "profiles")
    env = dict(os.environ, DISPLAY=xvfb, QGIS_PLUGINPATH=str(built_plugin), TERRAFORM_DESKTOP_OUT=SCREENSHOTS,
               TERRAFORM_DESKTOP_DEM=str(dem), TERRAFORM_DESKTOP_RESULT=str(result))
    env.pop("QT_QPA_PLATFORM", None)  # a real (virtual) display, not offscreen
    env.pop("PYTHONPATH", None)  # QGIS's own Python
    cmd = [QGIS, "--nologo", "--noversioncheck", "--profiles-path", str(profiles), "--code", DRIVER]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the QGIS desktop did not finish in 420 s: {(exc.stdout or b'')[-2000:]!r}")
    report_path = os.path.join(SCREENSHOTS, "result.json")
    assert os.path.isfile(report_path), f"the driver wrote no result (exit {done.returncode}):\n{done.stderr[-3000:]}"
    with open(report_path, encoding="utf-8") as f:
        state = json.load(f)
    assert state["error"] is None, state["error"]

    # The plugin is loaded as the desktop loads it (initGui), with its menu action.
    assert "terraform_plugin" in state["active_plugins"]
    assert any("Terraform DEM" in menu and "Install/repair Terraform DEM dependencies" in action
               for menu, action in state["plugin_menu"]), state["plugin_menu"]
    assert "Terraform DEM" in state["dialog_title"]

    # No Python errors anywhere in the message log.
    python_errors = [m for m in state["messages"] if m["tag"] == "Python error" or "Traceback" in m["message"]]
    assert python_errors == [], python_errors

    out = state["output"]
    assert out["valid"] and os.path.samefile(out["source"].split("|")[0], result)
    assert out["name"] == "dem terraformed (sea 0 m)"
    assert out["renderer"] == "multibandcolor" and out["bands"] == [1, 2, 3] and out["alpha_band"] == 4
    assert out["stretches"] == [False, False, False]  # the model's colours as they are
    assert out["tree_order"].index("output") < out["tree_order"].index("dem")  # above its DEM
    for picture in ("dialog.png", "map.png"):
        assert os.path.getsize(os.path.join(SCREENSHOTS, picture)) > 10_000, picture
    print(f"screenshots in {SCREENSHOTS}", file=sys.stderr)
