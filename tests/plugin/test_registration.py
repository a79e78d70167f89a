"""The provider, the algorithm and its parameters as QGIS sees them; plugin metadata kept in step."""

import configparser
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_provider_and_algorithm_ids(qgis_app):
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("terraform")
    assert provider is not None and provider.name() == "Terraform"
    assert provider.warningMessage() == ""  # onnxruntime is importable here
    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    assert alg is not None
    assert alg.displayName() == "Terraform DEM"
    assert alg.group() and alg.groupId()
    assert not alg.icon().isNull()
    help_text = alg.shortHelpString()
    for words in ("Sea level", "Vertical scale", "Mars", "200 m/pixel", "CC BY-NC-SA", "Band", "transparent",
                  "Install/repair Terraform DEM dependencies"):
        assert words in help_text


def test_help_is_flowing_html():
    """QGIS's help panel turns newlines into line breaks: none inside the text, one paragraph per <p>."""
    import re

    from terraform_plugin.help import INSTALL_HELP, SHORT_HELP

    for text in (SHORT_HELP, INSTALL_HELP):
        assert "\n" not in text and "<br" not in text
        assert text.count("<p>") == text.count("</p>") >= 2
        assert not re.search(r"\s{2,}", text)  # no indentation or wrap left over from the source
        for tag in ("ul", "li", "h3", "code", "b", "i"):
            assert text.count(f"<{tag}>") == text.count(f"</{tag}>"), tag
    assert "Setup" in SHORT_HELP and "Install/repair Terraform DEM dependencies" in SHORT_HELP


def test_toolbox_paths_in_the_docs_are_the_real_ones(qgis_app):
    """README, About text and help name the Toolbox path QGIS really shows (the README once lacked "Terrain")."""
    from qgis.core import QgsApplication

    from terraform_plugin.help import SHORT_HELP

    registry = QgsApplication.processingRegistry()
    main, setup = (registry.algorithmById(f"terraform:{name}") for name in ("terraformdem", "installdependencies"))
    terrain_path = f"{main.provider().name()} › {main.group()} › {main.displayName()}"
    setup_path = f"{setup.provider().name()} › {setup.group()}"
    meta = configparser.ConfigParser()
    meta.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for text in (readme, meta["general"]["about"]):
        assert f"Processing Toolbox › {terrain_path}" in text
    assert f"*{setup_path}*" in readme and f"{setup_path}" in SHORT_HELP


def test_readme_parameter_table_is_the_algorithms(qgis_app):
    """The README's parameter table names every parameter the algorithm registers, and no other (the issue-11
    and Dask parameters were once only in the prose)."""
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        table = set(re.findall(r"^\| `([A-Z_]+)` \|", f.read(), flags=re.M))
    assert table == {p.name() for p in alg.parameterDefinitions()}


def test_parameters(qgis_app):
    from qgis.core import QgsApplication

    from terraform_plugin.qgis_compat import FLAG_ADVANCED, FLAG_OPTIONAL

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    expected = {
        "INPUT": ("raster", None),
        "BAND": ("band", 1),
        "MODEL": ("file", None),
        "OVERLAP": ("number", 64),
        "NODATA_MODE": ("enum", 0),
        "RESOLUTION": ("number", None),
        "SEA_LEVEL": ("number", 0),
        "VERTICAL_SCALE": ("number", 1.0),
        "FIT_TO_EARTH": ("boolean", False),
        "PREVIEW": ("fileDestination", None),
        "OUTPUT": ("rasterDestination", None),
        "ALLOW_HUGE_GRID": ("boolean", None),  # issue 11 (default False: see test_data_safety)
        "MAX_ABS_ELEVATION": ("number", 1e5),  # issue 11
        "DASK_SCHEDULER": ("string", None),  # issue 13
        "LOOK": ("enum", 0),  # conditioned models
        "GUIDE": ("raster", None),
        "LATITUDE": ("number", None),
        "TILE_SIZE": ("number", 0),
        "GUIDE_STRENGTH": ("number", 1.0),
    }
    assert set(params) == set(expected)
    for name, (kind, default) in expected.items():
        assert params[name].type() == kind, name
        if default is not None:
            assert params[name].defaultValue() == default, name
    assert params["BAND"].parentLayerParameterName() == "INPUT"
    assert params["MODEL"].extension() == "onnx"
    assert params["NODATA_MODE"].options() == ["transparent", "ocean"]
    optional = {n for n, p in params.items() if p.flags() & FLAG_OPTIONAL}
    assert {"MODEL", "RESOLUTION", "PREVIEW", "GUIDE"} <= optional and "INPUT" not in optional
    advanced = {n for n, p in params.items() if p.flags() & FLAG_ADVANCED}
    assert advanced == {"OVERLAP", "NODATA_MODE", "RESOLUTION", "ALLOW_HUGE_GRID", "MAX_ABS_ELEVATION", "DASK_SCHEDULER",
                        "LATITUDE", "TILE_SIZE", "GUIDE_STRENGTH"}
    assert alg.provider().supportedOutputRasterLayerExtensions() == ["tif"]


def test_parameters_serialise_for_models_and_batch(qgis_app):
    """The Model Designer and batch mode store parameters as variant maps: each must round-trip."""
    from qgis.core import QgsApplication, QgsProcessingParameters

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    for param in alg.parameterDefinitions():
        copy = QgsProcessingParameters.parameterFromVariantMap(param.toVariantMap())
        assert copy is not None and copy.name() == param.name() and copy.type() == param.type()
        assert copy.defaultValue() == param.defaultValue()


def test_every_nodata_option_is_a_mode_the_engine_accepts(qgis_app, tmp_path):
    """The dialog's NODATA_MODE options, as the algorithm declares them, pass the engine's own request check
    (and an unknown mode does not): the QGIS enum cannot offer a mode the engine would refuse."""
    from qgis.core import QgsApplication

    from terraform_plugin.core.errors import InputError
    from terraform_plugin.core.request import TerraformRequest, check_request

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    options = alg.parameterDefinition("NODATA_MODE").options()
    assert options
    for mode in options:
        check_request(TerraformRequest("in.tif", str(tmp_path / "out.tif"), "m.onnx", nodata_mode=mode))
    with pytest.raises(InputError, match="nodata mode"):
        check_request(TerraformRequest("in.tif", str(tmp_path / "out.tif"), "m.onnx", nodata_mode="sea"))


def test_class_factory_needs_no_iface(qgis_app):
    import terraform_plugin

    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    session_plugin = qgis_app._terraform_plugin
    session_plugin.initProcessing()  # desktop may reach it twice (initGui): still one provider
    assert registry.providerById("terraform") is session_plugin.provider
    # A second instance (a reload without unload) cannot register a duplicate, and its unload must not
    # remove the provider that is registered.
    other = terraform_plugin.classFactory(None)
    other.initProcessing()
    assert other.provider is None
    other.unload()
    assert registry.algorithmById("terraform:terraformdem") is not None


def test_metadata_txt():
    from terraform_plugin.core.version import VERSION

    meta = configparser.ConfigParser()
    meta.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    general = meta["general"]
    assert general["version"] == VERSION
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert general["hasProcessingProvider"] == "yes"
    assert general["author"] == "Terraform DEM developers"
    for key in ("name", "description", "about", "email", "tracker", "repository", "tags", "changelog",
                "experimental", "icon"):
        assert general.get(key, "").strip(), key
    assert os.path.isfile(os.path.join(ROOT, "terraform_plugin", general["icon"]))


def test_onnxruntime_pin_matches_requirements():
    from terraform_plugin import deps

    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        pinned = re.search(r"^onnxruntime==([\w.]+)", f.read(), re.M).group(1)
    assert deps.ONNXRUNTIME_VERSION == pinned


def test_install_hint_names_a_real_python_of_this_version(qgis_app):
    import subprocess
    import sys

    from terraform_plugin import deps

    python = deps.python_executable()
    out = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert out.stdout.strip() == str(tuple(sys.version_info[:2]))
    command = deps.install_command()
    assert "--no-deps" in command and f"onnxruntime=={deps.ONNXRUNTIME_VERSION}" in command
    assert os.path.join("python", "dependencies", "terraform_dem", f"py{sys.version_info[0]}.{sys.version_info[1]}") in command


def test_bundled_model_is_found_when_present():
    from terraform_plugin.core.model import bundled_model_path

    repo_model = os.path.join(ROOT, "models", "terraform_generator.onnx")
    if not os.path.isfile(repo_model):
        pytest.skip("models/terraform_generator.onnx not trained/exported yet")
    assert os.path.samefile(bundled_model_path(), repo_model)
