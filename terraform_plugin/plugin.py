"""The QGIS plugin object: registers the Processing provider, nothing else.

``qgis_process`` calls ``classFactory(None)`` then ``initProcessing()``; the desktop calls ``initGui()``.
``iface`` is therefore only ever stored, never used outside ``initGui``.
"""

from qgis.core import QgsApplication

from . import deps


class TerraformPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

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

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
