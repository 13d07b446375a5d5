"""benchmark/choices.py declares the names --help lists without importing Keras: they must be
the registries' names, in their order, so the registries stay the one source of truth."""

from __future__ import annotations

import pytest

from benchmark import choices
from benchmark.augment import POLICIES
from benchmark.config import TrialConfig
from benchmark.data import DATASETS
from benchmark.models import FAMILIES, MODELS


def test_declared_names_are_the_registries_names():
    assert list(choices.DATASETS) == DATASETS.names()
    patterns = choices.PATTERNS["model"]  # keras:NAME: a family of open-ended names
    families = [f for f in FAMILIES.names() if f not in MODELS and f not in patterns]
    assert list(choices.MODELS) == MODELS.names() + families  # a family is a model name too
    assert set(patterns) <= set(FAMILIES.names())
    assert list(choices.AUGMENTATIONS) == POLICIES.names()
    assert choices.known("dataset") == DATASETS.known()  # folder:PATH included, last


def test_every_enumerated_choice_is_a_config_field():
    assert set(choices.CHOICES) <= set(TrialConfig.field_names())


def test_problem_names_the_value_and_the_nearest():
    assert choices.problem("optimizer", "adam") is None
    assert choices.problem("dataset", "folder:/any/where") is None
    assert choices.problem("optimizer", "adm") == (
        "unknown optimizer 'adm'; known: rmsprop, adam, sgd, adamw; did you mean 'adam'?"
    )
    assert choices.problem("model", "keras:AnyName") is None  # checked when it is built
    assert choices.problem("model", "resnt") == (
        "unknown model 'resnt'; known: cnn, seed, resnet, keras:NAME; did you mean 'resnet'?"
    )
    assert choices.did_you_mean("ResNet50v2", ["ResNet50V2", "ResNet50", "VGG16"], n=3) == (
        "; did you mean 'ResNet50V2' or 'ResNet50'?"
    )


def test_a_bad_setting_reads_the_same_on_every_route(tmp_path, capsys):
    """One validation layer: the rule declared beside the field says the same line whether
    the value came from code, the data API, a YAML space or the CLI (and so MLproject)."""
    from benchmark.cli import main
    from benchmark.data import load_dataset
    from benchmark.errors import UserError
    from benchmark.search.space import load_space

    line = "`val_fraction` should be between 0 and 1 (exclusive). Received: val_fraction=1.5"
    with pytest.raises(UserError) as code:
        TrialConfig(val_fraction=1.5)
    with pytest.raises(UserError) as data:
        load_dataset("cifar10", val_fraction=1.5)
    space = tmp_path / "s.yaml"
    space.write_text("space: {depth: {values: [2]}}\nfixed: {val_fraction: 1.5}\n")
    with pytest.raises(UserError) as yaml:
        load_space(str(space))
    assert main(["train", "--dataset", "cifar10", "--val-fraction", "1.5"]) == 2
    cli = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(code.value) == str(data.value) == line
    assert line in str(yaml.value) and cli == f"error: {line}"
