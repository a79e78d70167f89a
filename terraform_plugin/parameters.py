"""The algorithm's parameters: their QGIS definitions, in the dialog's order, and the request field each fills.

``FIELDS`` is the table from parameter to ``TerraformRequest`` field. A parameter's default is its field's
default in core, and its value goes into the request as given - a whole-number parameter is not rounded - for
core to check (``core.request`` says where each check lives). The parameters outside the table are the ones the
algorithm turns into something else: INPUT (a layer: its GDAL source), MODEL (empty: the bundled model), OUTPUT,
GUIDE (a layer, rendered when GDAL cannot read it), LOOK (an option index or a look id: the look's id) and
DASK_SCHEDULER (which runner runs the request).
"""

from qgis.core import (
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .cluster.runner import DASK_REQUIREMENT
from .core.errors import TerraformError
from .core.guard import MAX_GRID_PIXELS
from .core.model import bundled_model_path
from .core.onnxmeta import read_metadata
from .core.request import AUTO_LOOK, NODATA_MODES, TerraformRequest
from .qgis_compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, is_null

INPUT, BAND, MODEL, OUTPUT, PREVIEW = "INPUT", "BAND", "MODEL", "OUTPUT", "PREVIEW"
OVERLAP, NODATA_MODE, RESOLUTION = "OVERLAP", "NODATA_MODE", "RESOLUTION"
SEA_LEVEL, VERTICAL_SCALE, FIT_TO_EARTH = "SEA_LEVEL", "VERTICAL_SCALE", "FIT_TO_EARTH"
ALLOW_HUGE_GRID, MAX_ABS_ELEVATION = "ALLOW_HUGE_GRID", "MAX_ABS_ELEVATION"  # what protects against a typo
DASK_SCHEDULER = "DASK_SCHEDULER"
LOOK, GUIDE, LATITUDE, TILE_SIZE = "LOOK", "GUIDE", "LATITUDE", "TILE_SIZE"  # contract-2 models
GUIDE_STRENGTH = "GUIDE_STRENGTH"

FIELDS = {
    BAND: "band",
    OVERLAP: "overlap",
    NODATA_MODE: "nodata_mode",
    RESOLUTION: "resolution_m",
    SEA_LEVEL: "sea_level",
    VERTICAL_SCALE: "vertical_scale",
    FIT_TO_EARTH: "fit_to_earth",
    PREVIEW: "preview_path",
    ALLOW_HUGE_GRID: "allow_huge_grid",
    MAX_ABS_ELEVATION: "max_abs_elevation",
    LATITUDE: "latitude",
    TILE_SIZE: "tile_size",
    GUIDE_STRENGTH: "guide_strength",
}
DEFAULTS = TerraformRequest("", "", "")  # core's defaults


def default(name):
    value = getattr(DEFAULTS, FIELDS[name])
    return NODATA_MODES.index(value) if name == NODATA_MODE else value  # an enum's default is its option's index


def definitions():
    """Fresh definitions of every parameter (QGIS owns those it is given), in the dialog's order."""
    return [
        QgsProcessingParameterRasterLayer(INPUT, "Elevation layer (DEM)"),
        # Optional with a default: qgis_process 3.22 treats an unset band as missing even when it has a default.
        QgsProcessingParameterBand(BAND, "Elevation band", defaultValue=default(BAND), parentLayerParameterName=INPUT,
                                   optional=True),
        QgsProcessingParameterFile(MODEL, "Model (ONNX; empty = bundled model)", behavior=FILE_BEHAVIOR_FILE,
                                   extension="onnx", optional=True),
        _advanced(QgsProcessingParameterNumber(OVERLAP, "Chip overlap (pixels)", NUMBER_INTEGER,
                                               defaultValue=default(OVERLAP), minValue=0)),
        _advanced(QgsProcessingParameterEnum(NODATA_MODE, "No-data areas", options=list(NODATA_MODES),
                                             defaultValue=default(NODATA_MODE))),
        _advanced(QgsProcessingParameterNumber(RESOLUTION, "Output resolution (ground metres per pixel; empty = the "
                                               "model's)", NUMBER_DOUBLE, defaultValue=default(RESOLUTION),
                                               optional=True)),
        QgsProcessingParameterNumber(SEA_LEVEL, "Sea level (layer's elevation units)", NUMBER_DOUBLE,
                                     default(SEA_LEVEL)),
        QgsProcessingParameterNumber(VERTICAL_SCALE, "Vertical scale (> 0)", NUMBER_DOUBLE, default(VERTICAL_SCALE)),
        QgsProcessingParameterBoolean(FIT_TO_EARTH, "Fit relief to Earth's range (chooses the vertical scale)",
                                      defaultValue=default(FIT_TO_EARTH)),
        QgsProcessingParameterFileDestination(PREVIEW, "Before/after preview", fileFilter="PNG images (*.png)",
                                              optional=True, createByDefault=False),
        QgsProcessingParameterRasterDestination(OUTPUT, "Terraformed"),
        _advanced(QgsProcessingParameterBoolean(ALLOW_HUGE_GRID, f"Allow a huge output grid (over "
                                                f"{MAX_GRID_PIXELS / 1e9:.2g} gigapixels; otherwise refused as a "
                                                "likely typo)", defaultValue=default(ALLOW_HUGE_GRID), optional=True)),
        _advanced(QgsProcessingParameterNumber(MAX_ABS_ELEVATION, "Non-physical elevation limit (|z| above it is "
                                               "no-data; layer units)", NUMBER_DOUBLE,
                                               defaultValue=default(MAX_ABS_ELEVATION), optional=True)),
        _advanced(QgsProcessingParameterString(DASK_SCHEDULER, "Dask scheduler address (empty = run here)",
                                               defaultValue="", optional=True), DASK_HELP),
        _helped(QgsProcessingParameterEnum(LOOK, "Look (the model's looks; auto = latitude and elevation decide)",
                                           options=[label for _, label in look_options()], defaultValue=0,
                                           optional=True), LOOK_HELP),
        _helped(QgsProcessingParameterRasterLayer(GUIDE, "Colour guide (a true-colour layer of the place: its "
                                                  "colours, averaged to kilometres, set the palette)", optional=True),
                GUIDE_HELP),
        _advanced(QgsProcessingParameterNumber(GUIDE_STRENGTH, "Guide strength (1 = the guide's colours at "
                                               "kilometres, 0 = the model's own)", NUMBER_DOUBLE,
                                               defaultValue=default(GUIDE_STRENGTH), optional=True, minValue=0.0,
                                               maxValue=1.0), GUIDE_STRENGTH_HELP),
        _advanced(QgsProcessingParameterNumber(LATITUDE, "Latitude to terraform as if at (degrees; empty = each "
                                               "pixel's own, from the CRS)", NUMBER_DOUBLE,
                                               defaultValue=default(LATITUDE), optional=True, minValue=-90.0,
                                               maxValue=90.0), LATITUDE_HELP),
        _advanced(QgsProcessingParameterNumber(TILE_SIZE, "Largest tile (pixels; 0 = default)", NUMBER_INTEGER,
                                               defaultValue=default(TILE_SIZE), minValue=0, optional=True),
                  TILE_SIZE_HELP),
    ]


def _helped(param, text):
    param.setHelp(text)
    return param


def _advanced(param, text=None):
    param.setFlags(param.flags() | FLAG_ADVANCED)
    return _helped(param, text) if text else param


DASK_HELP = (
    "tcp://host:8786 of a running Dask scheduler: the chips are computed on its workers in parts and assembled "
    "into the same output. Workers must see the DEM, the model and the output folder at the same paths and have "
    "this plugin installed. Needs dask.distributed in QGIS's Python: "
    f'<python> -m pip install "{DASK_REQUIREMENT}".'
)
LOOK_HELP = (
    "How the landscape is painted: auto lets the place's latitude and elevation decide; a look paints it as the "
    "model's training region of that name would look. On the command line: LOOK=<index> or LOOK=<id>, e.g. "
    "LOOK=ANDES. Models of contract 1 (0.3.0 and before) have no looks."
)
GUIDE_HELP = (
    "Any raster layer with true colours (8-bit RGB): a basemap such as Natural Earth or NASA Blue Marble, a "
    "low-zoom satellite layer, an old Landsat scene, a painted palette map; in any CRS and resolution, a file "
    "(GeoTIFF, VRT, GeoPackage) or a web map layer (XYZ, WMS, WMTS: rendered over the DEM first). The model keeps "
    "its colours at a scale of kilometres and paints the detail. Only models trained with guides take one; where "
    "the guide has no data the model paints without it."
)
GUIDE_STRENGTH_HELP = (
    "With a colour guide: how far the output's colours, averaged over the guide's cells (6.4 km at 200 m), move "
    "to the guide's. 1 (the default) keeps the guide's palette and the model's detail within each cell; 0 leaves "
    "the colours as the model paints them with the guide as a hint; between, part of the way. Without a guide it "
    "does nothing."
)
LATITUDE_HELP = (
    "Conditioned models colour a place by its latitude (treelines and snowlines move with it), taken pixel by "
    "pixel from the layer's georeference (Earth, Mars...). Set a latitude to override it, e.g. 45 to make a Mars "
    "crater look temperate, or for a layer whose CRS gives no latitudes."
)
TILE_SIZE_HELP = (
    "Tiling-independent models only: the largest tile side the model runs on. The picture does not depend on it; "
    "memory does (a model with 128 px margins: about 2.7 GB at its default 2048 px, 1.7 GB at 1792 px for 4 % "
    "more computation): smaller tiles for a small machine, larger ones for a GPU with memory to spare."
)


# -- reading values ----------------------------------------------------------------------------------------


def request_fields(alg, parameters, context) -> dict:
    """{request field: value} of the table's parameters, evaluated by QGIS (expressions, layer bands...)."""
    fields = {}
    for name, field in FIELDS.items():
        definition = alg.parameterDefinition(name)
        if is_null(parameters.get(name)):
            fields[field] = getattr(DEFAULTS, field)
        elif definition.type() in ("number", "band"):
            number = alg.parameterAsDouble(parameters, name, context)
            fields[field] = _whole_as_int(number) if _counts(definition) else number
        elif definition.type() == "boolean":
            fields[field] = alg.parameterAsBoolean(parameters, name, context)
        elif definition.type() == "enum":  # index-valued, like QGIS's own enums: the option is the value
            fields[field] = definition.options()[alg.parameterAsEnum(parameters, name, context)]
        else:  # the preview's file
            fields[field] = alg.parameterAsFileOutput(parameters, name, context) or None
    return fields


def plain_fields(alg, parameters) -> dict:
    """The same from the values as given, where they are plain numbers or booleans (a dialog's, or qgis_process's
    text): what can be checked before QGIS evaluates anything. The others are left out (core's defaults)."""
    fields = {}
    for name, field in FIELDS.items():
        definition, value = alg.parameterDefinition(name), parameters.get(name)
        if is_null(value) or not isinstance(value, (bool, int, float, str)):
            continue  # unset, or for QGIS to evaluate (an expression): core checks it in the run
        if definition.type() == "boolean" and str(value).lower() in ("true", "false"):
            fields[field] = str(value).lower() == "true"
        elif definition.type() in ("number", "band") and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                continue  # text QGIS's own check refuses
            fields[field] = _whole_as_int(number) if _counts(definition) else number
    return fields


def _counts(definition) -> bool:
    """A parameter in whole numbers (a band, pixels)."""
    return definition.type() == "band" or definition.dataType() == NUMBER_INTEGER


def _whole_as_int(number):
    return int(number) if number.is_integer() else number  # not rounded: core refuses 2.5 px in its own words


# -- LOOK ----------------------------------------------------------------------------------------------------
# An index-valued enum, like NODATA_MODE and QGIS's own, over the bundled model's looks (read from its file
# without onnxruntime, so the algorithm is listed where onnxruntime is missing): the dialog shows each look's
# label, batch mode and the Model Designer store its index. Static-string enums (``usesStaticStrings``) would show
# ids only and, on the command line, accept the option text alone; so LOOK also takes a look's id (LOOK=ANDES,
# case-insensitive) - the one spelling that works with any MODEL, since indexes are the bundled model's. A look
# the chosen model does not declare is refused by the engine, with that model's list.


def look_options():
    """[(id, label)] of LOOK's options: auto, then the bundled model's looks (none when it has none)."""
    options = [(AUTO_LOOK, f"{AUTO_LOOK} - latitude and elevation decide")]
    path = bundled_model_path()
    if path:
        try:
            looks = read_metadata(path).looks
        except TerraformError:  # the run reports a broken model; listing the algorithm must not fail
            looks = ()
        options += [(look.id, f"{look.id} - {look.label}") for look in looks]
    return options


def look_index(value):
    """LOOK as given -> its option index, or None when it is no option: an id only another model may have, or an
    index out of range (``is_index``)."""
    if is_null(value):
        return 0
    ids = [i.lower() for i, _ in look_options()]
    if is_index(value):
        number = float(value)
        return int(number) if number.is_integer() and 0 <= number < len(ids) else None
    text = str(value).strip().lower()
    return ids.index(text) if text in ids else None


def is_index(value) -> bool:
    """LOOK given as a number (an option's index), not as a look's id."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) or str(value).strip().lstrip("-").isdigit()


def look_id(value) -> str:
    """The look the request gets: the option's id, or the text as given (the engine names the model's looks
    when it has no such look)."""
    index = look_index(value)
    return str(value).strip() if index is None else look_options()[index][0]
