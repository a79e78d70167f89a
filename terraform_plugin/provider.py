"""The Processing provider ``terraform`` ("Terraform")."""

import importlib.util
import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithm import TerraformDemAlgorithm
from .core.version import VERSION
from .install_algorithm import InstallDependenciesAlgorithm

ICON_PATH = os.path.join(os.path.dirname(__file__), "icon.svg")


class TerraformProvider(QgsProcessingProvider):
    def id(self):
        return "terraform"

    def name(self):
        return "Terraform"

    def longName(self):
        return f"Terraform DEM {VERSION}"

    def versionInfo(self):
        return VERSION

    def icon(self):
        return QIcon(ICON_PATH)

    def svgIconPath(self):
        return ICON_PATH

    def warningMessage(self):  # noqa: N802 (QGIS's name)
        # Shown in the Toolbox next to the provider. find_spec does not import: QGIS start-up stays fast.
        if importlib.util.find_spec("onnxruntime") is None:
            return ("onnxruntime is not installed for QGIS's Python: run Setup › Install/repair Terraform DEM "
                    "dependencies.")
        return ""

    def loadAlgorithms(self):
        self.addAlgorithm(TerraformDemAlgorithm())
        self.addAlgorithm(InstallDependenciesAlgorithm())

    def supportedOutputRasterLayerExtensions(self):
        # The engine writes GeoTIFF only; QGIS then offers (and defaults temporary outputs to) .tif.
        return ["tif"]
