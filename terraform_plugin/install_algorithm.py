"""The Processing algorithm ``terraform:installdependencies``: the installer with QGIS's progress bar and log.

The plugin menu's "Install/repair Terraform DEM dependencies…" opens this algorithm's dialog; headless it runs
with ``qgis_process run terraform:installdependencies -- WHEEL=/path/onnxruntime-….whl``. Ticking DASK also
installs Dask (after onnxruntime), the optional component the Dask scheduler address parameter needs.
"""

import os

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
)
from qgis.PyQt.QtGui import QIcon

from . import installer
from .help import INSTALL_HELP
from .qgis_compat import FILE_BEHAVIOR_FILE, FILE_BEHAVIOR_FOLDER

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


class InstallDependenciesAlgorithm(QgsProcessingAlgorithm):
    CUDA = "CUDA"
    WHEEL = "WHEEL"
    DASK = "DASK"
    DASK_WHEELS = "DASK_WHEELS"

    def name(self):
        return "installdependencies"

    def displayName(self):
        return "Install/repair Terraform DEM dependencies"

    def group(self):
        return "Setup"

    def groupId(self):
        return "setup"

    def tags(self):
        return ["onnxruntime", "install", "repair", "dependencies", "pip", "cuda", "gpu", "offline", "wheel", "dask",
                "cluster"]

    def shortHelpString(self):
        return INSTALL_HELP

    def shortDescription(self):
        return "Installs the pinned onnxruntime for QGIS's own Python (offline from a wheel file, or CUDA)"

    def icon(self):
        return QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))

    def createInstance(self):
        return InstallDependenciesAlgorithm()

    # No HideFromModeler flag: QGIS defines Deprecated as HideFromToolbox | HideFromModeler and qgis_process tests
    # it with a bitwise and, so that flag alone hid this algorithm from `qgis_process list` and made `run` warn
    # "this algorithm is deprecated". Headless is where this installer is needed most.

    def initAlgorithm(self, config=None):
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.CUDA, "Use an NVIDIA GPU (installs onnxruntime-gpu; needs CUDA and cuDNN)", defaultValue=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.WHEEL,
                "Wheel file for offline install (empty = download the pinned version)",
                behavior=FILE_BEHAVIOR_FILE,
                extension="whl",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.DASK, "Also install Dask (for the Dask scheduler address parameter: runs on a cluster)",
                defaultValue=False,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.DASK_WHEELS,
                "Folder of Dask wheels for offline install (empty = download the pinned version)",
                behavior=FILE_BEHAVIOR_FOLDER,
                optional=True,
            )
        )
        for name, description in (
            ("ONNXRUNTIME_VERSION", "Installed onnxruntime version"),
            ("DASK_VERSION", "Installed dask.distributed version (empty when not asked for)"),
            ("EXECUTION_PROVIDER", "Execution provider the bundled model loads on"),
            ("TARGET", "Dependency folder"),
        ):
            self.addOutput(QgsProcessingOutputString(name, description))

    def processAlgorithm(self, parameters, context, feedback):
        wheel = self.parameterAsFile(parameters, self.WHEEL, context) or None
        cuda = self.parameterAsBoolean(parameters, self.CUDA, context)
        dask = self.parameterAsBoolean(parameters, self.DASK, context)
        share = 50.0 if dask else 100.0  # of the progress bar, for onnxruntime; Dask gets the rest
        try:
            report = installer.install(
                cuda=cuda,
                wheel=wheel,
                log=feedback.pushInfo,
                progress=lambda percent: feedback.setProgress(percent * share / 100.0),
                cancelled=feedback.isCanceled,
            )
        except installer.InstallError as exc:
            raise QgsProcessingException(f"Installing onnxruntime failed: {exc}") from None
        dask_version = ""
        if dask:
            wheels = self.parameterAsFile(parameters, self.DASK_WHEELS, context) or None
            try:
                dask_version = installer.install_dask(
                    wheels=wheels, log=feedback.pushInfo, cancelled=feedback.isCanceled,
                    progress=lambda percent: feedback.setProgress(share + percent * (100.0 - share) / 100.0),
                )["version"]
            except installer.InstallError as exc:
                raise QgsProcessingException(f"Installing Dask failed (onnxruntime is installed): {exc}") from None
        return {
            "ONNXRUNTIME_VERSION": report["version"],
            "DASK_VERSION": dask_version,
            "EXECUTION_PROVIDER": report["execution_provider"],
            "TARGET": report["target"],
        }
