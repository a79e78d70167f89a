"""How the terraformed layer appears in the project once the run is done: its name, its renderer, its place."""

import collections

from qgis.core import QgsMultiBandColorRenderer, QgsProcessingLayerPostProcessorInterface, QgsRasterLayer

# Post-processors must outlive processAlgorithm (QGIS calls them after the run, possibly after the algorithm
# instance is gone) and Python must hold them or SIP frees them: keep the recent ones.
_POST_PROCESSORS = collections.deque(maxlen=64)


def output_layer_name(input_name, sea_level):
    return f"{input_name} terraformed (sea {sea_level:g} m)"


def style_on_completion(context, output, input_layer, sea_level):
    """Name and style the output layer, above its DEM, when QGIS loads it after the run."""
    if not context.willLoadLayerOnCompletion(output):
        return
    name = output_layer_name(input_layer.name(), sea_level)
    details = context.layerToLoadOnCompletionDetails(output)
    details.name = name
    styler = TerraformedLayerStyler(name, input_layer.id())
    _POST_PROCESSORS.append(styler)
    details.setPostProcessor(styler)


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
