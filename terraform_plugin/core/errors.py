"""Errors the engine raises. Each carries a message meant for the user, as it stands.

The QGIS algorithm turns every ``TerraformError`` into a ``QgsProcessingException`` with the same text.
"""


class TerraformError(Exception):
    """A problem the user can fix; the message says what and how."""


class InputError(TerraformError):
    """The elevation raster (or a parameter about it) cannot be used."""


class ModelError(TerraformError):
    """The model file is missing, unreadable, or breaks the model contract."""


class DependencyError(TerraformError):
    """A Python package the engine needs (onnxruntime) cannot be imported."""


class OutputError(TerraformError):
    """The output cannot be written where asked."""


class Cancelled(TerraformError):
    """The user cancelled; partial output has been removed."""
