"""The module registries fail loudly, unedited when a module is added.

A pipeline package without its ``MODULE`` is an error (its detectors would escape the contract
tests), and so is a ready web module without a pipeline module of its name, or a pipeline
module the web registry does not list (ready or planned): at app start and here.
"""
from __future__ import annotations

import sys

import pytest

import pipelines
from pipelines.core import modules as pipeline_modules
from pipelines.core.modules import PipelineModule, RegistryError, discover
from webapp import create_app
from webapp import modules as web_modules
from webapp.modules import ModuleSpec, check_pipelines, planned, registered, registry_problems
from tests.conftest import sqlite_url


@pytest.fixture
def fresh_discovery():
    """Discovery re-run from scratch in the test and again afterwards."""
    pipeline_modules._discover.cache_clear()
    yield
    pipeline_modules._discover.cache_clear()
    for name in [n for n in sys.modules if n.startswith("pipelines.fake_")]:
        del sys.modules[name]


def fake_package(monkeypatch, tmp_path, name: str, init: str) -> None:
    """A sub-package ``pipelines.<name>`` that only this test sees."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(init)
    monkeypatch.setattr(pipelines, "__path__", [*pipelines.__path__, str(tmp_path)])


def test_the_web_and_pipeline_registries_agree():
    assert registry_problems(registered(), sorted(discover())) == []
    check_pipelines()
    ready = {spec.name for spec in registered() if spec.ready}
    assert ready <= set(discover()) <= {spec.name for spec in registered()}


def test_a_pipeline_package_without_module_is_an_error(monkeypatch, tmp_path, fresh_discovery):
    fake_package(monkeypatch, tmp_path, "fake_nomodule", '"""A module that forgot MODULE."""\n')
    with pytest.raises(RegistryError) as error:
        discover()
    message = str(error.value)
    assert "pipelines.fake_nomodule" in message
    assert "MODULE = PipelineModule(name='fake_nomodule'" in message
    assert "pipelines/fake_nomodule/__init__.py" in message


def test_a_module_of_another_type_is_an_error(monkeypatch, tmp_path, fresh_discovery):
    fake_package(monkeypatch, tmp_path, "fake_typed", "MODULE = {'name': 'fake_typed'}\n")
    with pytest.raises(RegistryError, match="pipelines.fake_typed .* has a dict for MODULE"):
        discover()


def test_a_module_named_unlike_its_package_is_an_error(monkeypatch, tmp_path, fresh_discovery):
    fake_package(monkeypatch, tmp_path, "fake_named",
                 "from pipelines.core.modules import PipelineModule\n"
                 "MODULE = PipelineModule(name='other')\n")
    with pytest.raises(RegistryError, match="pipelines.fake_named.MODULE is named 'other'"):
        discover()


def test_a_package_with_its_module_is_discovered(monkeypatch, tmp_path, fresh_discovery):
    fake_package(monkeypatch, tmp_path, "fake_good",
                 "from pipelines.core.modules import PipelineModule\n"
                 "MODULE = PipelineModule(name='fake_good')\n")
    assert discover()["fake_good"] == PipelineModule(name="fake_good")
    with pytest.raises(RegistryError, match="pipeline module 'fake_good' has no web module"):
        check_pipelines()


def test_mismatches_are_named_with_what_to_add():
    ready = ModuleSpec(name="lonely", title="Lonely", blurb="", predictor=object,
                       page="lonely.page")
    problems = registry_problems([ready, planned("later", "Later", "")], ["extra"])
    assert len(problems) == 2
    assert "web module 'lonely' is ready but there is no pipeline module 'lonely'" in problems[0]
    assert "planned(...)" in problems[0]
    assert "pipeline module 'extra' has no web module" in problems[1]
    assert "REGISTRY in webapp/modules/__init__.py" in problems[1]
    # a planned web module needs no pipeline yet, and a planned entry lists a pipeline module
    assert registry_problems([planned("later", "Later", "")], []) == []
    assert registry_problems([planned("extra", "Extra", "")], ["extra"]) == []


def start(tmp_path):
    return create_app({"TESTING": True, "DATABASE_URL": sqlite_url(tmp_path)})


def test_app_start_refuses_a_ready_web_module_without_its_pipeline(monkeypatch, tmp_path):
    lonely = ModuleSpec(name="lonely", title="Lonely", blurb="", predictor=object,
                        page="lonely.page")
    monkeypatch.setattr(web_modules, "REGISTRY", (*web_modules.REGISTRY, lonely))
    with pytest.raises(RegistryError, match="web module 'lonely' is ready"):
        start(tmp_path)
    monkeypatch.setattr(web_modules, "REGISTRY",
                        (*web_modules.REGISTRY[:-1], planned("lonely", "Lonely", "")))
    assert start(tmp_path).name == "webapp"  # planned: listed, nothing else needed


def test_app_start_refuses_a_pipeline_module_the_web_registry_does_not_list(monkeypatch,
                                                                           tmp_path):
    known = discover()
    monkeypatch.setattr(pipeline_modules, "discover",
                        lambda: known | {"extra": PipelineModule(name="extra")})
    with pytest.raises(RegistryError, match="pipeline module 'extra' has no web module"):
        start(tmp_path)
    monkeypatch.setattr(web_modules, "REGISTRY",
                        (*web_modules.REGISTRY, planned("extra", "Extra", "Coming.")))
    start(tmp_path)
