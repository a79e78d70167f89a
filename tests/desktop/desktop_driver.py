"""Runs inside the QGIS desktop (``qgis --code desktop_driver.py``), driven by tests/desktop/test_desktop.py.

As a user would: the DEM is added as a layer, the Terraform DEM dialog is opened from the Processing framework,
its parameters set, screenshot, Run; then the result is inspected where the user sees it (layer tree, renderer,
message log) and the map is screenshot. Everything observed goes to result.json; QGIS then quits.
Paths come from the environment (TERRAFORM_DESKTOP_*). Nothing here asserts: the test does.
"""

import json
import os
import traceback

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import active_plugins, iface

OUT = os.environ["TERRAFORM_DESKTOP_OUT"]
DEM = os.environ["TERRAFORM_DESKTOP_DEM"]
RESULT = os.environ["TERRAFORM_DESKTOP_RESULT"]
MODEL = os.environ.get("TERRAFORM_DESKTOP_MODEL", "")
TIMEOUT_MS = int(os.environ.get("TERRAFORM_DESKTOP_TIMEOUT_MS", "240000"))

state = {"messages": [], "steps": [], "error": None}
_keep = []  # Python must hold the dialog and timers


def on_message(message, tag, level):
    state["messages"].append({"tag": tag, "level": int(level), "message": message[:2000]})


QgsApplication.messageLog().messageReceived.connect(on_message)


def finish():
    try:
        with open(os.path.join(OUT, "result.json"), "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
    finally:
        QTimer.singleShot(500, QgsApplication.instance().quit)


def guarded(step):
    def run():
        try:
            step()
        except Exception:  # reported to the test, which fails with the traceback
            state["error"] = traceback.format_exc()
            finish()

    return run


def start():
    import processing

    state["steps"].append("started")
    state["active_plugins"] = list(active_plugins)
    menu_actions = []
    for action in iface.pluginMenu().actions():
        if action.menu() is not None:
            menu_actions += [(action.text(), a.text()) for a in action.menu().actions()]
    state["plugin_menu"] = menu_actions

    dem = QgsRasterLayer(DEM, "dem")
    QgsProject.instance().addMapLayer(dem)
    state["dem_id"] = dem.id()
    params = {"INPUT": dem.id(), "SEA_LEVEL": 0, "OUTPUT": RESULT}
    if MODEL:
        params["MODEL"] = MODEL
    dialog = processing.createAlgorithmDialog("terraform:terraformdem", params)
    _keep.append(dialog)
    dialog.resize(1100, 760)  # room for the help panel in the screenshot
    dialog.show()
    dialog.raise_()
    state["dialog_title"] = dialog.windowTitle()
    QTimer.singleShot(1500, guarded(lambda: shoot_dialog_and_run(dialog)))


def shoot_dialog_and_run(dialog):
    dialog.grab().save(os.path.join(OUT, "dialog.png"))
    state["steps"].append("dialog shown")
    dialog.runAlgorithm()
    state["steps"].append("run started")
    poll(dialog, 0)


def poll(dialog, waited):
    layers = [l for l in QgsProject.instance().mapLayers().values() if l.id() != state["dem_id"]]
    if layers:
        QTimer.singleShot(1500, guarded(lambda: inspect(dialog, layers[0])))
        return
    if waited > TIMEOUT_MS:
        state["error"] = f"no output layer after {waited / 1000:.0f} s"
        finish()
        return
    QTimer.singleShot(500, guarded(lambda: poll(dialog, waited + 500)))


def inspect(dialog, layer):
    state["steps"].append("output loaded")
    dialog.grab().save(os.path.join(OUT, "dialog_after_run.png"))
    renderer = layer.renderer()
    info = {"name": layer.name(), "source": layer.source(), "valid": layer.isValid(),
            "band_count": layer.bandCount(), "renderer": renderer.type() if renderer else None}
    if renderer is not None and renderer.type() == "multibandcolor":
        info.update(
            bands=[renderer.redBand(), renderer.greenBand(), renderer.blueBand()],
            alpha_band=renderer.alphaBand(),
            stretches=[e is not None for e in (renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
                                              renderer.blueContrastEnhancement())],
        )
    root = QgsProject.instance().layerTreeRoot()
    order = [node.layerId() for node in root.findLayers()]
    info["tree_order"] = ["output" if i == layer.id() else "dem" if i == state["dem_id"] else i for i in order]
    state["output"] = info
    dialog.close()
    canvas = iface.mapCanvas()
    canvas.setExtent(layer.extent())
    canvas.refreshAllLayers()
    QTimer.singleShot(3000, guarded(lambda: shoot_map(canvas)))


def shoot_map(canvas):
    canvas.saveAsImage(os.path.join(OUT, "map.png"))
    iface.mainWindow().grab().save(os.path.join(OUT, "main_window.png"))
    state["steps"].append("map saved")
    finish()


QTimer.singleShot(2000, guarded(start))
