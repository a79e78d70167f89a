"""Processing enums under their QGIS 4 names, with the QGIS 3 spelling as the fallback.

QGIS 3.36 added scoped enums (``Qgis.ProcessingNumberParameterType.Integer`` ...) and QGIS 4 (Qt6) removed the
unscoped class attributes (``QgsProcessingParameterNumber.Integer`` ...). The plugin supports 3.22 to 4.x, so
every such value is taken from here. The fallback branch is the only place in the package where the unscoped
names may appear (tests/plugin/test_qt6_ready.py checks that).
"""

from qgis.core import (
    NULL,
    Qgis,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

try:  # QGIS >= 3.36
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
    FILE_BEHAVIOR_FILE = Qgis.ProcessingFileParameterBehavior.File
    FILE_BEHAVIOR_FOLDER = Qgis.ProcessingFileParameterBehavior.Folder
    FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    FLAG_OPTIONAL = Qgis.ProcessingParameterFlag.Optional
    FLAG_HIDDEN = Qgis.ProcessingParameterFlag.Hidden
except AttributeError:  # QGIS 3.22 - 3.34
    NUMBER_INTEGER = QgsProcessingParameterNumber.Integer
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Double
    FILE_BEHAVIOR_FILE = QgsProcessingParameterFile.File
    FILE_BEHAVIOR_FOLDER = QgsProcessingParameterFile.Folder
    FLAG_ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    FLAG_OPTIONAL = QgsProcessingParameterDefinition.FlagOptional
    FLAG_HIDDEN = QgsProcessingParameterDefinition.FlagHidden

SCOPED_ENUMS = hasattr(Qgis, "ProcessingParameterFlag")


def is_null(value) -> bool:
    """None, an empty string, or QGIS's NULL (a null QVariant under Qt5, None under Qt6): no QVariant needed.

    The type check matters: under Qt5 ``0 == NULL`` may hold, and 0 is a real value (sea level 0 m)."""
    return value is None or value == "" or (isinstance(value, type(NULL)) and value == NULL)
