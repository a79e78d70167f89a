"""The Processing algorithm ``terraform:terraformdem``: QGIS parameters -> core.pipeline -> feedback.

It maps parameters to a ``TerraformRequest`` and calls ``core.pipeline.run``; all the work is in ``core``.
No iface or GUI here: it must run headless (qgis_process), in batch mode and inside the Model Designer.
"""

import collections
import contextlib
import functools
import os
import tempfile

from qgis.core import (
    QgsMultiBandColorRenderer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QIcon

from . import deps, guide_layer
from .core.model import MODEL_FILE, bundled_model_path
from .core.pipeline import NODATA_MODES  # numpy and GDAL only: onnxruntime is imported when a model loads
from .help import SHORT_HELP
from .qgis_compat import FILE_BEHAVIOR_FILE, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, is_null

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


def output_layer_name(input_name, sea_level):
    return f"{input_name} terraformed (sea {sea_level:g} m)"


def _unset(value):
    return is_null(value)


def _number(value):
    """A parameter's plain number, or None when unset or a QgsProperty/expression (QGIS evaluates those)."""
    if _unset(value) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _open_problem(path):
    """The engine's reason it cannot open ``path`` as a raster (a folder can be one: an ESRI grid), or None."""
    from .core.errors import TerraformError
    from .core.source import open_dem

    try:
        open_dem(path)
    except TerraformError as exc:
        return str(exc)
    return None


# Post-processors must outlive processAlgorithm (QGIS calls them after the run, possibly after the algorithm
# instance is gone) and Python must hold them or SIP frees them: keep the recent ones.
_POST_PROCESSORS = collections.deque(maxlen=64)


class TerraformedLayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Shows the result as it is: RGB 0-255 without stretch, alpha band 4, named, above its DEM."""

    def __init__(self, name, input_layer_id):
        super().__init__()
        self.name = name
        self.input_layer_id = input_layer_id

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            return
        # No contrast enhancement: the model's colours are already display values; a min/max stretch would
        # change them per layer and make neighbouring outputs disagree.
        renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
        if layer.bandCount() >= 4:
            renderer.setAlphaBand(4)
        layer.setRenderer(renderer)
        layer.setName(self.name)
        layer.triggerRepaint()
        project = context.project()
        if project is not None:
            self._place_above_input(project.layerTreeRoot(), layer)

    def _place_above_input(self, root, layer):
        node = root.findLayer(layer.id())
        anchor = root.findLayer(self.input_layer_id) if self.input_layer_id else None
        if node is None or anchor is None:
            return
        parent = anchor.parent()
        clone = node.clone()
        parent.insertChildNode(parent.children().index(anchor), clone)
        node.parent().removeChildNode(node)


class TerraformDemAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    BAND = "BAND"
    MODEL = "MODEL"
    OVERLAP = "OVERLAP"
    NODATA_MODE = "NODATA_MODE"
    RESOLUTION = "RESOLUTION"
    SEA_LEVEL = "SEA_LEVEL"
    VERTICAL_SCALE = "VERTICAL_SCALE"
    FIT_TO_EARTH = "FIT_TO_EARTH"
    PREVIEW = "PREVIEW"
    OUTPUT = "OUTPUT"
    ALLOW_HUGE_GRID = "ALLOW_HUGE_GRID"  # issue 11
    MAX_ABS_ELEVATION = "MAX_ABS_ELEVATION"  # issue 11
    DASK_SCHEDULER = "DASK_SCHEDULER"  # issue 13
    LOOK = "LOOK"  # conditioned (contract-2) models: the model's looks
    GUIDE = "GUIDE"  # models with guide inputs: a coarse true-colour layer that sets the palette
    LATITUDE = "LATITUDE"
    TILE_SIZE = "TILE_SIZE"

    def name(self):
        return "terraformdem"

    def displayName(self):
        return "Terraform DEM"

    def group(self):
        return "Terrain"

    def groupId(self):
        return "terrain"

    def tags(self):
        return ["dem", "elevation", "satellite", "pix2pix", "mars", "mola", "srtm", "terrain", "gan", "onnx"]

    def shortHelpString(self):
        return SHORT_HELP

    def shortDescription(self):
        return "Elevation model -> Earth-like satellite image (pix2pix generator)"

    def icon(self):
        return QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))

    def createInstance(self):
        return TerraformDemAlgorithm()

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Elevation layer (DEM)"))
        # Optional with a default: qgis_process 3.22 treats an unset band as missing even when it has a default.
        self.addParameter(
            QgsProcessingParameterBand(
                self.BAND, "Elevation band", defaultValue=1, parentLayerParameterName=self.INPUT, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                "Model (ONNX; empty = bundled model)",
                behavior=FILE_BEHAVIOR_FILE,
                extension="onnx",
                optional=True,
            )
        )
        advanced = []
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP, "Chip overlap (pixels)", NUMBER_INTEGER, defaultValue=64, minValue=0
        )
        advanced.append(overlap)
        nodata = QgsProcessingParameterEnum(
            self.NODATA_MODE, "No-data areas", options=list(NODATA_MODES), defaultValue=0
        )
        advanced.append(nodata)
        resolution = QgsProcessingParameterNumber(
            self.RESOLUTION,
            "Output resolution (ground metres per pixel; empty = the model's)",
            NUMBER_DOUBLE,
            defaultValue=None,
            optional=True,
        )
        advanced.append(resolution)
        for param in advanced:
            param.setFlags(param.flags() | FLAG_ADVANCED)
        self.addParameter(overlap)
        self.addParameter(nodata)
        self.addParameter(resolution)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SEA_LEVEL, "Sea level (layer's elevation units)", NUMBER_DOUBLE, 0.0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.VERTICAL_SCALE, "Vertical scale (> 0)", NUMBER_DOUBLE, 1.0
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.FIT_TO_EARTH, "Fit relief to Earth's range (chooses the vertical scale)", defaultValue=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.PREVIEW,
                "Before/after preview",
                fileFilter="PNG images (*.png)",
                optional=True,
                createByDefault=False,
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Terraformed"))
        self._add_safety_parameters()  # issue 11
        # issue 13: send the job to a Dask cluster (terraform_plugin.cluster); Dask is optional.
        dask = QgsProcessingParameterString(self.DASK_SCHEDULER, "Dask scheduler address (empty = run here)",
                                            defaultValue="", optional=True)
        dask.setFlags(dask.flags() | FLAG_ADVANCED)
        dask.setHelp(
            "tcp://host:8786 of a running Dask scheduler: the chips are computed on its workers in parts and "
            "assembled into the same output. Workers must see the DEM, the model and the output folder at the "
            "same paths and have this plugin installed. Needs dask.distributed in QGIS's Python: "
            '<python> -m pip install "dask[distributed]==2026.8.0".'
        )
        self.addParameter(dask)
        self._add_conditioning_parameters()

    # -- conditioned models: look, guide, latitude, tile size --------------------------------------------------

    def _add_conditioning_parameters(self):
        """LOOK, GUIDE, LATITUDE (advanced) and TILE_SIZE (advanced), for contract-2 models.

        LOOK is an index-valued enum, like NODATA_MODE and QGIS's own, over the bundled model's looks (read from
        its file without onnxruntime, so the algorithm is listed where onnxruntime is missing): the dialog shows
        each look's label, batch mode and the Model Designer store its index. Static-string enums
        (``usesStaticStrings``) would have shown ids only and, on the command line, accepted the option text
        alone; so LOOK also takes a look's id (``LOOK=ANDES``, case-insensitive), which ``checkParameterValues``
        turns into its index before QGIS's own check - the one spelling that works with any MODEL, since
        indexes are the bundled model's. A look the chosen model does not declare is refused by the engine,
        with that model's list.
        """
        look = QgsProcessingParameterEnum(self.LOOK, "Look (the model's looks; auto = latitude and elevation decide)",
                                          options=[label for _, label in self._look_options()], defaultValue=0,
                                          optional=True)
        look.setHelp(
            "How the landscape is painted: auto lets the place's latitude and elevation decide; a look paints it "
            "as the model's training region of that name would look. On the command line: LOOK=<index> or "
            "LOOK=<id>, e.g. LOOK=ANDES. Models of contract 1 (0.3.0 and before) have no looks."
        )
        self.addParameter(look)
        guide = QgsProcessingParameterRasterLayer(
            self.GUIDE, "Colour guide (a true-colour layer of the place: its colours, averaged to kilometres, set "
            "the palette)", optional=True)
        guide.setHelp(
            "Any raster layer with true colours (8-bit RGB): a basemap such as Natural Earth or NASA Blue Marble, a "
            "low-zoom satellite layer, an old Landsat scene, a painted palette map; in any CRS and resolution, a "
            "file (GeoTIFF, VRT, GeoPackage) or a web map layer (XYZ, WMS, WMTS: rendered over the DEM first). "
            "The model keeps its colours at a scale of kilometres and paints the detail. Only models trained with "
            "guides take one; where the guide has no data the model paints without it."
        )
        self.addParameter(guide)
        latitude = QgsProcessingParameterNumber(
            self.LATITUDE, "Latitude to terraform as if at (degrees; empty = each pixel's own, from the CRS)",
            NUMBER_DOUBLE, defaultValue=None, optional=True, minValue=-90.0, maxValue=90.0,
        )
        latitude.setHelp(
            "Conditioned models colour a place by its latitude (treelines and snowlines move with it), taken "
            "pixel by pixel from the layer's georeference (Earth, Mars...). Set a latitude to override it, e.g. "
            "45 to make a Mars crater look temperate, or for a layer whose CRS gives no latitudes."
        )
        tile = QgsProcessingParameterNumber(
            self.TILE_SIZE, "Largest tile (pixels; 0 = default)", NUMBER_INTEGER, defaultValue=0, minValue=0,
            optional=True,
        )
        tile.setHelp(
            "Tiling-independent models only: the largest tile side the model runs on. The picture does not "
            "depend on it; memory does (a model with 128 px margins: about 2.7 GB at its default 2048 px, 1.7 GB "
            "at 1792 px for 4 % more computation): smaller tiles for a small machine, larger ones for a GPU with "
            "memory to spare."
        )
        for param in (latitude, tile):
            param.setFlags(param.flags() | FLAG_ADVANCED)
            self.addParameter(param)

    @staticmethod
    def _look_options():
        """[(id, label)] of LOOK's options: auto, then the bundled model's looks (none when it has none)."""
        options = [("auto", "auto - latitude and elevation decide")]
        path = bundled_model_path()
        if path:
            from .core.errors import TerraformError
            from .core.onnxmeta import read_metadata

            try:
                looks = read_metadata(path).looks
            except TerraformError:  # the run reports a broken model; listing the algorithm must not fail
                looks = ()
            options += [(lk.id, f"{lk.id} - {lk.label}") for lk in looks]
        return options

    def _look_index(self, value):
        """LOOK as given -> its option index, or None when it is no option (an id only another model has)."""
        if _unset(value):
            return 0
        ids = [i.lower() for i, _ in self._look_options()]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value) if float(value).is_integer() and 0 <= value < len(ids) else None
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text) if 0 <= int(text) < len(ids) else None
        return ids.index(text.lower()) if text.lower() in ids else None

    def _look_id(self, parameters):
        """The look id the request gets: the option's id, or the text as given (the engine names the model's
        looks when it has no such look)."""
        value = parameters.get(self.LOOK)
        index = self._look_index(value)
        if index is None:
            return str(value).strip()
        return self._look_options()[index][0]

    def _add_safety_parameters(self):
        """Issue 11: the opt-in for huge grids and the non-physical elevation limit (advanced)."""
        from .core.guard import DEFAULT_MAX_ABS_ELEVATION, MAX_GRID_PIXELS

        huge = QgsProcessingParameterBoolean(
            self.ALLOW_HUGE_GRID,
            f"Allow a huge output grid (over {MAX_GRID_PIXELS / 1e9:.2g} gigapixels; otherwise refused as a likely typo)",
            defaultValue=False,
            optional=True,
        )
        limit = QgsProcessingParameterNumber(
            self.MAX_ABS_ELEVATION,
            "Non-physical elevation limit (|z| above it is no-data; layer units)",
            NUMBER_DOUBLE,
            defaultValue=DEFAULT_MAX_ABS_ELEVATION,
            optional=True,
        )
        for param in (huge, limit):
            param.setFlags(param.flags() | FLAG_ADVANCED)
            self.addParameter(param)

    def _check_safety_values(self, parameters):
        """Issue 11: what QGIS would round silently or word vaguely; (ok, message) like checkParameterValues."""
        for name, what in ((self.BAND, "Elevation band"), (self.OVERLAP, "Chip overlap")):
            raw = parameters.get(name)
            if _unset(raw) or isinstance(raw, bool):
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                continue  # an expression or a layer band name: QGIS evaluates and checks it
            if not number.is_integer():
                return False, f"{what} must be a whole number, got {raw} (it would be rounded to {round(number)})."
            if name == self.OVERLAP and number < 0:
                return False, f"Chip overlap must be 0 or more pixels, got {raw}."
        model = parameters.get(self.MODEL)
        if isinstance(model, str) and model and not model.lower().endswith(".onnx"):
            return False, f"The model must be an ONNX file (.onnx), got {model}."
        value = parameters.get(self.INPUT)
        problem = _open_problem(value) if isinstance(value, str) and os.path.isdir(value) else None
        if problem:  # the engine's own words: "... is a folder, not an elevation raster ..."
            return False, f"{problem}."
        return True, ""

    # -- validation QGIS can do before the engine starts -------------------------------------------------

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS's name)
        # Runs before processAlgorithm (dialog, batch, qgis_process): catch what QGIS would word misleadingly,
        # e.g. a file that exists but is no raster is reported by QGIS as "not found". The checks are the
        # engine's own (core), asked early; processAlgorithm's run makes them again on the evaluated values.
        from .core.errors import TerraformError
        from .core.guard import check_elevation_limit, check_georeferencing
        from .core.relief import Relief
        from .core.source import open_dem

        ok, message = self._check_safety_values(parameters)  # what only the raw QGIS values show
        if not ok:
            return ok, message
        look = parameters.get(self.LOOK)
        if not _unset(look) and not isinstance(look, bool):
            # A look id (LOOK=ANDES) stands for its option; one the bundled model lacks is the engine's to judge.
            parameters = dict(parameters)
            index = self._look_index(look)
            if index is None and str(look).strip().lstrip("-").isdigit():
                return False, f"LOOK {look} is no option: 0-{len(self._look_options()) - 1}, or a look's id."
            parameters[self.LOOK] = 0 if index is None else index
        value = parameters.get(self.INPUT)
        try:
            scale = float(parameters.get(self.VERTICAL_SCALE))
        except (TypeError, ValueError):
            scale = None  # unset, or a QgsProperty/expression: evaluated, and checked, in processAlgorithm
        limit = _number(parameters.get(self.MAX_ABS_ELEVATION))
        try:
            if isinstance(value, str) and os.path.isfile(value):
                check_georeferencing(open_dem(value), os.path.basename(value))  # a GCP-only scan: warp it first
            if scale is not None:
                Relief(vertical_scale=scale)
            if limit is not None:
                check_elevation_limit(limit)
        except TerraformError as exc:
            message = str(exc)
            return False, message if message.endswith(".") else f"{message}."
        return super().checkParameterValues(parameters, context)

    def _input_source(self, parameters, context):
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                f"{parameters.get(self.INPUT)!s} is not a raster QGIS can read: choose an elevation raster "
                "(GeoTIFF, VRT, IMG...)."
            )
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f'Layer "{layer.name()}" comes from the {layer.providerType()} provider; Terraform DEM reads '
                "rasters through GDAL. Save it as a GeoTIFF first (Raster › Conversion › Translate)."
            )
        # The engine checks the file itself (its own CRS, the band): QGIS's layer CRS is no guide, as QGIS may
        # give a CRS-less file a default one, and 3.22 cannot resolve some CRSs GDAL reads fine (IAU_2015 Mars).
        source = layer.dataProvider().dataSourceUri()
        band = 1 if _unset(parameters.get(self.BAND)) else self.parameterAsInt(parameters, self.BAND, context)
        return layer, source, band

    def _model_path(self, parameters, context):
        path = self.parameterAsFile(parameters, self.MODEL, context)
        if path:
            return path  # the engine says when it is missing or no Terraform model
        bundled = bundled_model_path()
        if bundled is None:
            raise QgsProcessingException(
                f"No model given and the bundled model is missing (expected {os.path.join(PLUGIN_DIR, 'models', MODEL_FILE)}). "
                f"Choose a Terraform ONNX model in the Model parameter (MODEL=<file>.onnx), or put {MODEL_FILE} "
                "in that folder."
            )
        return bundled

    def _with_guide(self, request, parameters, context, scratch, feedback):
        """``request`` with its guide: none; a layer GDAL reads, by its source; any other layer rendered over the
        DEM into a temporary GeoTIFF in ``scratch()`` (``guide_layer``) once the rest of the request has passed
        the engine's checks, named by its public source. A model that takes no guide gets the layer's source
        unrendered: the engine refuses it, saying why."""
        import dataclasses

        from .core.pipeline import check_request

        value = parameters.get(self.GUIDE)
        if _unset(value):
            return request
        layer = self.parameterAsRasterLayer(parameters, self.GUIDE, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                f"The colour guide {value!s} is not a raster layer QGIS can read: choose a true-colour raster "
                "(GeoTIFF, VRT, GeoPackage) or web map layer (XYZ, WMS, WMTS)."
            )
        if not guide_layer.needs_rendering(layer):
            return dataclasses.replace(request, guide_path=guide_layer.gdal_source(layer))
        label = guide_layer.public_source(layer)
        target = self._guide_target(request)
        if target is None:
            return dataclasses.replace(request, guide_path=layer.source(), guide_label=label)
        check_request(request)  # before rendering: a wrong output path should not wait for it
        grid, coarse_px = target
        try:
            path = guide_layer.render(layer, grid, coarse_px, os.path.join(scratch(), "guide.tif"), feedback)
        except guide_layer.GuideLayerError as exc:
            raise QgsProcessingException(f"The colour guide layer {layer.name()} cannot be used: {exc}.") from None
        return dataclasses.replace(request, guide_path=path, guide_label=label)

    @staticmethod
    def _guide_target(request):
        """(processing grid, coarse_px) a web layer is rendered for, or None where the engine will refuse the run
        anyway (a model without guide inputs, a broken model or DEM: its own words then)."""
        from .core.errors import TerraformError
        from .core.grid import processing_grid
        from .core.onnxmeta import read_metadata
        from .core.source import open_dem

        try:
            metadata = read_metadata(request.model_path)
            spec = metadata.plane("guide_rgb")
            if spec is None:
                return None
            grid = processing_grid(open_dem(request.input_path), request.resolution_m or metadata.resolution_m)
        except TerraformError:
            return None
        return grid, spec.options["coarse_px"]

    def _optional_float(self, parameters, name, context):
        if _unset(parameters.get(name)):
            return None
        return self.parameterAsDouble(parameters, name, context)

    # -- the run --------------------------------------------------------------------------------------------

    def processAlgorithm(self, parameters, context, feedback):
        feedback = feedback or QgsProcessingFeedback()
        problem = deps.onnxruntime_problem()
        if problem:
            raise QgsProcessingException(deps.missing_message(problem))
        # Imported here, after the dependency folders are on sys.path.
        from .core import pipeline
        from .core.errors import Cancelled, DependencyError, TerraformError

        layer, source, band = self._input_source(parameters, context)
        model_path = self._model_path(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        scale_value = self.parameterAsDouble(parameters, self.VERTICAL_SCALE, context)
        resolution = self._optional_float(parameters, self.RESOLUTION, context)
        overlap = self.parameterAsInt(parameters, self.OVERLAP, context)
        # Index-valued like QGIS's own enums (qgis_process help lists "0: transparent", "1: ocean").
        nodata_mode = NODATA_MODES[self.parameterAsEnum(parameters, self.NODATA_MODE, context)]
        sea_level = self.parameterAsDouble(parameters, self.SEA_LEVEL, context)
        preview = self.parameterAsFileOutput(parameters, self.PREVIEW, context) or None
        limit = self._optional_float(parameters, self.MAX_ABS_ELEVATION, context)
        if limit is None:
            limit = pipeline.TerraformRequest.max_abs_elevation  # the engine's default

        scheduler = (self.parameterAsString(parameters, self.DASK_SCHEDULER, context) or "").strip()  # issue 13
        run = pipeline.run
        if scheduler:
            from .cluster import runner

            if runner.dask_problem():
                raise QgsProcessingException(runner.dask_hint(runner.dask_problem()))
            run = functools.partial(runner.run_on_dask, scheduler=scheduler)
        request = pipeline.TerraformRequest(
            input_path=source,
            output_path=output,
            model_path=model_path,
            band=band,
            overlap=overlap,
            nodata_mode=nodata_mode,
            resolution_m=resolution,
            sea_level=sea_level,
            vertical_scale=scale_value,
            fit_to_earth=self.parameterAsBoolean(parameters, self.FIT_TO_EARTH, context),
            preview_path=preview,
            allow_huge_grid=self.parameterAsBoolean(parameters, self.ALLOW_HUGE_GRID, context),  # issue 11
            max_abs_elevation=limit,  # issue 11
            look=self._look_id(parameters),
            latitude=self._optional_float(parameters, self.LATITUDE, context),
            tile_size=0 if _unset(parameters.get(self.TILE_SIZE)) else self.parameterAsInt(parameters, self.TILE_SIZE,
                                                                                         context),
        )
        feedback.pushInfo(f"Model file: {model_path}")
        with contextlib.ExitStack() as cleanup:
            def scratch():  # a folder for a rendered guide layer, removed after the run whatever happens
                return cleanup.enter_context(tempfile.TemporaryDirectory(prefix="terraform-guide-"))

            try:
                result = run(
                    self._with_guide(request, parameters, context, scratch, feedback),
                    progress=feedback.setProgress,
                    log=feedback.pushInfo,
                    cancelled=feedback.isCanceled,
                )
            except Cancelled as exc:
                raise QgsProcessingException(str(exc) or "Cancelled: no output was written.") from None
            except DependencyError as exc:
                raise QgsProcessingException(deps.missing_message(str(exc))) from None
            except TerraformError as exc:
                raise QgsProcessingException(str(exc)) from None

        # The engine already logged model, grid, chips and elapsed time; the execution provider is repeated on
        # its own line because "is my GPU used?" is the question users ask most (CUDA can fail to load silently).
        feedback.pushInfo(f"Execution provider: {result.provider}")
        if result.provider != "CUDAExecutionProvider" and deps.cuda_requested():
            feedback.reportError(
                "onnxruntime-gpu is installed but CUDA did not load, so the CPU ran the model: check the CUDA "
                "and cuDNN libraries onnxruntime-gpu needs (Install/repair Terraform DEM dependencies reports them).",
                False,
            )
        if context.willLoadLayerOnCompletion(output):
            name = output_layer_name(layer.name(), sea_level)
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = name
            styler = TerraformedLayerStyler(name, layer.id())
            _POST_PROCESSORS.append(styler)
            details.setPostProcessor(styler)
        return {self.OUTPUT: output, self.PREVIEW: result.preview_path or preview}
