"""``python -m terraform_plugin.cluster DEM.tif OUT.tif [options]``: the same command as ``terraform-dem``."""

import sys

from .cli import main

sys.exit(main(prog="python -m terraform_plugin.cluster"))
