"""The table from parameter to request field (terraform_plugin/parameters.py): defaults are core's, values reach
the request as given and core judges them - in the dialog's early check and, for values QGIS evaluates
(expressions), in the run."""

import os

import pytest


def test_every_mapped_parameter_defaults_to_its_request_fields_default(qgis_app):
    from qgis.core import QgsApplication

    from terraform_plugin.core.chips import DEFAULT_OVERLAP
    from terraform_plugin.core.request import NODATA_MODES, TerraformRequest
    from terraform_plugin.parameters import FIELDS

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    core = TerraformRequest("", "", "")
    assert set(FIELDS) <= {d.name() for d in alg.parameterDefinitions()}
    for name, field in FIELDS.items():
        default = alg.parameterDefinition(name).defaultValue()
        if name == "NODATA_MODE":  # index-valued, like QGIS's own enums
            default = NODATA_MODES[default]
        elif name == "PREVIEW":  # a file destination: no file by default
            default = default or None
        assert default == getattr(core, field), name
    assert alg.parameterDefinition("OVERLAP").defaultValue() == DEFAULT_OVERLAP


def test_an_expression_is_evaluated_then_judged_by_core_not_rounded(run_alg, models, dem, tmp_path):
    """An OVERLAP that QGIS evaluates (an expression) skips the early check; the run gets 2.5, not 2 or 3, and
    core refuses it in its own words. A whole one runs, and so does an expression BAND."""
    from qgis.core import QgsProcessingException, QgsProperty

    params = {"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "out.tif")}
    with pytest.raises(QgsProcessingException, match=r"overlap must be a whole number of pixels, got 2\.5"):
        run_alg({**params, "OVERLAP": QgsProperty.fromExpression("5 / 2")})
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]
    results, feedback = run_alg({**params, "OVERLAP": QgsProperty.fromExpression("32 * 2"),
                                 "BAND": QgsProperty.fromExpression("3 - 2")})
    assert os.path.isfile(results["OUTPUT"])


def test_the_dialogs_early_check_speaks_cores_words(qgis_app, models, dem, tmp_path):
    """checkParameterValues on values as the dialog and qgis_process give them (numbers, text): refused with
    core's message before any run, and the run's defaults pass."""
    from qgis.core import QgsApplication, QgsProcessingContext

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    context = QgsProcessingContext()
    base = {"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "out.tif")}
    assert alg.checkParameterValues(base, context) == (True, "")
    for extra, words in (({"LATITUDE": "95"}, "latitude must be a number of degrees from -90"),
                         ({"VERTICAL_SCALE": 0}, "greater than 0"),
                         ({"OVERLAP": "2.5"}, "overlap must be a whole number of pixels, got 2.5"),
                         ({"BAND": 2}, "band 2 does not exist: dem.tif has 1 band"),
                         ({"TILE_SIZE": 300.5}, "tile size must be a whole number"),
                         ({"GUIDE_STRENGTH": "1.5"}, "guide strength must be a number from 0"),
                         ({"FIT_TO_EARTH": "true", "VERTICAL_SCALE": "0", "SEA_LEVEL": "nan"}, "sea level")):
        ok, message = alg.checkParameterValues({**base, **extra}, context)
        assert not ok and words in message and message.endswith("."), (extra, message)
    # Fitting to Earth chooses its own vertical scale: a 0 typed beside it is no mistake.
    assert alg.checkParameterValues({**base, "FIT_TO_EARTH": "true", "VERTICAL_SCALE": "0"}, context)[0]
    assert os.listdir(tmp_path) == ["dem.tif"]
