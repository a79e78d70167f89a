"""The Processing algorithm ``terraform:terraformdem``: QGIS parameters -> a ``TerraformRequest`` -> a runner.

The parameters and the request field each fills are ``parameters``; the work, and every check of a value, is
core's (``core.request`` says where each lives): this module maps, runs and reports. No iface or GUI here: it
must run headless (qgis_process), in batch mode and inside the Model Designer.
"""

import contextlib
import functools
import os
import tempfile

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback
from qgis.PyQt.QtGui import QIcon

from . import deps, guide_layer
from . import parameters as p
from .core.errors import TerraformError
from .core.model import MODEL_FILE, bundled_model_path
from .core.request import TerraformRequest, check_settings  # numpy and GDAL only: no onnxruntime
from .help import SHORT_HELP
from .output_layer import style_on_completion
from .qgis_compat import is_null

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


class TerraformDemAlgorithm(QgsProcessingAlgorithm):
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
        for definition in p.definitions():
            self.addParameter(definition)

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS's name)
        """Core's checks on the values as given, before the run (dialog, batch, qgis_process): a mistake is
        refused in core's words rather than rounded (2.5 px) or worded vaguely by QGIS's own check, which calls
        a file that is no raster "not found". The run checks the evaluated values again."""
        look = parameters.get(p.LOOK)
        if not is_null(look) and not isinstance(look, bool):
            index = p.look_index(look)
            if index is None and p.is_index(look):
                return False, f"LOOK {look} is no option: 0-{len(p.look_options()) - 1}, or a look's id."
            # A look's id stands for its option for QGIS's check; one only another model has is the engine's to judge.
            parameters = {**parameters, p.LOOK: 0 if index is None else index}
        model = parameters.get(p.MODEL)
        if isinstance(model, str) and model and not model.lower().endswith(".onnx"):  # QGIS would not say why
            return False, f"The model must be an ONNX file (.onnx), got {model}."
        source = parameters.get(p.INPUT)
        draft = TerraformRequest(source if isinstance(source, str) else "", "", "", **p.plain_fields(self, parameters))
        try:
            check_settings(draft)
            if draft.input_path and os.path.exists(draft.input_path):  # a path (a layer is checked in the run)
                from .core.pipeline import open_input

                open_input(draft)
        except TerraformError as exc:
            message = str(exc)
            return False, message if message.endswith(".") else f"{message}."
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):
        feedback = feedback or QgsProcessingFeedback()
        problem = deps.onnxruntime_problem()
        if problem:
            raise QgsProcessingException(deps.missing_message(problem))
        from .core.errors import Cancelled, DependencyError  # after the dependency folders are on sys.path

        layer = self._input_layer(parameters, context)
        request = TerraformRequest(
            # The engine checks the file itself (its own CRS, the band): QGIS's layer CRS is no guide, as QGIS may
            # give a CRS-less file a default one, and 3.22 cannot resolve some CRSs GDAL reads (IAU_2015 Mars).
            input_path=layer.dataProvider().dataSourceUri(),
            output_path=self.parameterAsOutputLayer(parameters, p.OUTPUT, context),
            model_path=self._model_path(parameters, context),
            look=p.look_id(parameters.get(p.LOOK)),
            **p.request_fields(self, parameters, context),
        )
        run = self._runner(parameters, context)
        feedback.pushInfo(f"Model file: {request.model_path}")
        with contextlib.ExitStack() as cleanup:
            def scratch():  # a folder for a rendered guide layer, removed after the run whatever happens
                return cleanup.enter_context(tempfile.TemporaryDirectory(prefix="terraform-guide-"))

            try:
                result = run(self._with_guide(request, parameters, context, scratch, feedback),
                             progress=feedback.setProgress, log=feedback.pushInfo, cancelled=feedback.isCanceled)
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
        style_on_completion(context, request.output_path, layer, request.sea_level)
        return {p.OUTPUT: request.output_path, p.PREVIEW: result.preview_path or request.preview_path}

    # -- what the table does not map one to one ---------------------------------------------------------------

    def _input_layer(self, parameters, context):
        layer = self.parameterAsRasterLayer(parameters, p.INPUT, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                f"{parameters.get(p.INPUT)!s} is not a raster QGIS can read: choose an elevation raster "
                "(GeoTIFF, VRT, IMG...)."
            )
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f'Layer "{layer.name()}" comes from the {layer.providerType()} provider; Terraform DEM reads '
                "rasters through GDAL. Save it as a GeoTIFF first (Raster › Conversion › Translate)."
            )
        return layer

    def _model_path(self, parameters, context):
        path = self.parameterAsFile(parameters, p.MODEL, context)
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

    def _runner(self, parameters, context):
        """``core.pipeline.run`` on this machine, or the Dask runner on DASK_SCHEDULER's cluster (Dask is optional:
        the installer offers it)."""
        scheduler = (self.parameterAsString(parameters, p.DASK_SCHEDULER, context) or "").strip()
        if not scheduler:
            from .core import pipeline

            return pipeline.run
        from .cluster import runner

        problem = runner.dask_problem()
        if problem:
            raise QgsProcessingException(runner.dask_hint(problem))
        return functools.partial(runner.run_on_dask, scheduler=scheduler)

    def _with_guide(self, request, parameters, context, scratch, feedback):
        """``request`` with GUIDE's layer, if any (``guide_layer.with_guide``)."""
        if is_null(parameters.get(p.GUIDE)):
            return request
        layer = self.parameterAsRasterLayer(parameters, p.GUIDE, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(
                f"The colour guide {parameters.get(p.GUIDE)!s} is not a raster layer QGIS can read: choose a "
                "true-colour raster (GeoTIFF, VRT, GeoPackage) or web map layer (XYZ, WMS, WMTS)."
            )
        try:
            return guide_layer.with_guide(request, layer, scratch, feedback)
        except guide_layer.GuideLayerError as exc:
            raise QgsProcessingException(f"The colour guide layer {layer.name()} cannot be used: {exc}.") from None
