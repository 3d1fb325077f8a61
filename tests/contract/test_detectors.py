"""The Detector contract, run over every registered detector of every module, unedited.

A module registers detectors in its ``MODULE`` spec and gives each a fast example
(``DetectorExample``); these tests then cover it: parameters from the signature, errors
before fit and on bad input, fit -> score -> explain, save -> load -> the same scores.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from pipelines.core.artifacts import load_bundle, save_bundle
from pipelines.core.detectors import (BaseDetector, Detector, Explanation, FeatureExplanation,
                                      InvalidInputError, NotFittedError, get_detector_class,
                                      registry)
from pipelines.core.modules import discover

KEYS = sorted(registry())


def example_for(key: str):
    module, model = key.split("/")
    examples = discover()[module].load_examples()
    assert model in examples, f"{key} is registered without a DetectorExample"
    return examples[model]


@pytest.fixture(scope="module", params=KEYS)
def fitted(request):
    """(key, class, example, fitted detector), fitted once per detector."""
    key = request.param
    example = example_for(key)
    cls = get_detector_class(key)
    detector = cls(**example.params)
    assert detector.fit(example.X, example.y, feature_names=example.feature_names) is detector
    assert isinstance(detector, Detector)  # the protocol the pipelines and the app rely on
    return key, cls, example, detector


def test_registry_is_keyed_by_module_and_model():
    assert KEYS and all(k.count("/") == 1 for k in KEYS)
    for key in KEYS:
        module, model = key.split("/")
        assert get_detector_class(module, model) is get_detector_class(key)


@pytest.mark.parametrize("key", KEYS)
def test_params_come_from_the_signature(key):
    cls = get_detector_class(key)
    assert issubclass(cls, BaseDetector)
    signature = inspect.signature(cls.__init__)
    expected = [p for p in signature.parameters if p != "self"]
    detector = cls()
    assert list(detector.get_params()) == expected
    clone = cls(**detector.get_params())
    assert clone.get_params() == detector.get_params()
    with pytest.raises(ValueError, match="no parameter"):
        detector.set_params(not_a_parameter=1)


@pytest.mark.parametrize("key", KEYS)
def test_scoring_before_fit_is_a_clear_error(key):
    example = example_for(key)
    detector = get_detector_class(key)(**example.params)
    for method in (detector.score, detector.explain):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(example.X)


def test_fit_learns_the_feature_schema(fitted):
    _, _, example, detector = fitted
    X = np.asarray(example.X)
    assert detector.n_features_in_ == X.shape[-1]
    assert len(detector.feature_names_in_) == detector.n_features_in_
    if example.feature_names is not None:
        assert list(detector.feature_names_in_) == list(example.feature_names)


def test_score_and_explain_agree(fitted):
    _, _, example, detector = fitted
    X = np.asarray(example.X)
    scores = detector.score(X)
    assert scores.shape[0] == len(X) and np.isfinite(scores).all()
    explanation = detector.explain(X[:7])
    assert isinstance(explanation, Explanation)
    np.testing.assert_allclose(explanation.scores, scores[:7], rtol=1e-5, atol=1e-6)
    if isinstance(explanation, FeatureExplanation):
        assert explanation.contributions.shape == (7, detector.n_features_in_)
        assert explanation.top(3).shape == (7, min(3, detector.n_features_in_))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e39])
def test_non_finite_or_out_of_range_input_is_refused(fitted, bad):
    _, _, example, detector = fitted
    X = np.array(example.X[:4], dtype=float)
    X.flat[5] = bad
    with pytest.raises(InvalidInputError, match="infinite or beyond the float32 range"):
        detector.score(X)
    with pytest.raises(InvalidInputError):
        detector.explain(X)


def test_wrong_shape_is_refused(fitted):
    _, _, example, detector = fitted
    X = np.asarray(example.X, dtype=float)
    with pytest.raises(InvalidInputError, match="expected"):
        detector.score(X[..., :-1])
    with pytest.raises(InvalidInputError, match="no rows"):
        detector.score(X[:0])


def test_save_load_gives_the_same_scores(fitted, tmp_path):
    key, cls, example, detector = fitted
    module = key.split("/")[0]
    X = np.asarray(example.X)
    manifest = save_bundle(detector, tmp_path / "bundle", module=module,
                           manifest_fields={"threshold": {"value": 0.5}})
    assert manifest["model"] == cls.name and manifest["module"] == module
    assert manifest["params"] == detector.get_params()
    loaded, _ = load_bundle(tmp_path / "bundle", detector.feature_names_in_)
    assert type(loaded) is cls
    np.testing.assert_allclose(loaded.score(X), detector.score(X), rtol=0, atol=example.atol)
    a, b = detector.explain(X[:5]), loaded.explain(X[:5])
    np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=example.atol)
    if "n_jobs" in cls.param_names():  # serving threads are set at load time, not by training
        served, _ = load_bundle(tmp_path / "bundle", n_jobs=1)
        assert served.n_jobs == 1
        np.testing.assert_allclose(served.score(X), detector.score(X), rtol=0, atol=example.atol)
