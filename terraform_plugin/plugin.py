"""The QGIS plugin object: registers the Processing provider and, in the desktop, one menu action.

``qgis_process`` calls ``classFactory(None)`` then ``initProcessing()``; the desktop calls ``initGui()``.
``iface`` is therefore only ever stored, never used outside ``initGui``/``unload``.
"""

import os

from qgis.core import QgsApplication

from . import deps

MENU = "&Terraform DEM"
INSTALL_ACTION_TEXT = "Install/repair Terraform DEM dependencies…"
INSTALL_ALGORITHM = "terraform:installdependencies"


class TerraformPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.install_action = None

    def initProcessing(self):
        if self.provider is not None:  # both entry points may run in one session
            return
        # onnxruntime lives in a dependency folder; expose it before anything imports the engine's model.
        deps.add_dependency_paths()
        from .provider import TerraformProvider

        provider = TerraformProvider()
        # The registry refuses (and deletes) a second provider with the same id, e.g. a plugin reloaded without
        # unload: then keep no dangling reference, so unload() leaves the registered one alone.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider

    def initGui(self):
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction  # re-exported from QtGui by qgis.PyQt under Qt6

        icon = QIcon(os.path.join(os.path.dirname(__file__), "icon.svg"))
        self.install_action = QAction(icon, INSTALL_ACTION_TEXT, self.iface.mainWindow())
        self.install_action.setObjectName("terraformInstallDependencies")
        self.install_action.triggered.connect(self.open_installer)
        self.iface.addPluginToMenu(MENU, self.install_action)

    def open_installer(self):
        """The installer algorithm's dialog: QGIS's progress bar, log and cancel button, then its report."""
        import processing

        processing.execAlgorithmDialog(INSTALL_ALGORITHM, {})

    def unload(self):
        if self.install_action is not None and self.iface is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action.deleteLater()
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
