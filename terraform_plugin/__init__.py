"""Terraform DEM: a QGIS Processing plugin that turns elevation models into Earth-like satellite images.

Importing the package imports no ``qgis`` (the trainer and tools use ``terraform_plugin.core`` without QGIS);
QGIS enters through ``classFactory``.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import TerraformPlugin

    return TerraformPlugin(iface)
