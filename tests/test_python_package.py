"""pyproject.toml against the files it must agree with: the pins of requirements.txt (the development
environment `make setup` builds) and the one version (terraform_plugin/core/version.py, which metadata.txt
mirrors). What pip builds from it is checked in tests/cluster/test_cluster_recipe.py, which installs it."""

import os
import tomllib

import pytest

Requirement = pytest.importorskip("packaging.requirements", reason="reads pip's requirement syntax").Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def requirement_key(text):
    r = Requirement(text)
    return r.name.lower(), frozenset(r.extras), str(r.specifier), str(r.marker or "")


def test_every_pin_is_the_development_environments():
    project = pyproject()["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    pinned_here = {requirement_key(line) for line in lines if line}
    pinned = [text for text in declared if str(Requirement(text).specifier).startswith("==")]
    assert [text for text in pinned if requirement_key(text) not in pinned_here] == []
    # The one requirement left unpinned on purpose: Debian's own scipy satisfies it (see pyproject.toml).
    assert {Requirement(text).name for text in declared if text not in pinned} == {"scipy"}
    # numpy 1 where Debian 12's GDAL needs it, numpy 2 from Python 3.12 (Debian 13): both, exclusive markers.
    numpy = [Requirement(text) for text in project["dependencies"] if Requirement(text).name == "numpy"]
    for python, want in (("3.11", "1.26.4"), ("3.13", "2.2.4")):
        chosen = [str(r.specifier) for r in numpy if r.marker.evaluate({"python_version": python})]
        assert chosen == [f"=={want}"], (python, chosen)


def test_torch_is_pinned_to_the_local_cpu_build_version():
    """An unpinned torch would let pip choose a CUDA build from the index; 2.13.0 is the CPU wheel's version."""
    train = pyproject()["project"]["optional-dependencies"]["train"]
    assert [t for t in train if Requirement(t).name == "torch"] == ["torch==2.13.0"]


def test_version_comes_from_the_plugins_version_module():
    from terraform_plugin.core.version import VERSION

    config = pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "terraform_plugin.core.version.VERSION"}
    assert VERSION  # what pip reads (tests/cluster/test_cluster_recipe.py checks the installed metadata says it)


def test_console_commands_name_functions_that_exist():
    import importlib

    for name, target in pyproject()["project"]["scripts"].items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
