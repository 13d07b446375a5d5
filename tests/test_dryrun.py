"""The dry run prices each configuration on its own family's line of seconds against FLOPs:
one line through a CNN and a MobileNet priced the auto space's other candidates wrong."""

from __future__ import annotations

import pytest

from benchmark.config import TrialConfig
from benchmark.search import dryrun


def test_each_family_and_each_keras_architecture_is_probed_and_priced_apart(monkeypatch):
    per_gflop = {"cnn": 1.0, "resnet": 2.0, "keras:MobileNetV3Small": 8.0}
    timed = []

    def probe(cfg, data, flops):
        timed.append((cfg.model, flops))
        return dryrun.Probe(flops=flops, epoch_s=per_gflop[cfg.model] * flops / 1e9, trace_s=1.0)

    monkeypatch.setattr(dryrun, "_probe", probe)
    rows = [(TrialConfig(model="cnn", depth=d), d * 10**9) for d in (2, 3, 4)]
    rows += [(TrialConfig(model="resnet"), 2 * 10**9), (TrialConfig(model="resnet"), 6 * 10**9)]
    rows += [(TrialConfig(model="keras:MobileNetV3Small"), 10**9)]
    probes = dryrun._probes(None, rows)
    g = 10**9
    assert sorted(timed) == [("cnn", 2 * g), ("cnn", 4 * g), ("keras:MobileNetV3Small", g),
                             ("resnet", 2 * g), ("resnet", 6 * g)]  # fmt: skip
    price = {m: dryrun._interpolate(probes, TrialConfig(model=m), 3 * 10**9)[0]
             for m in per_gflop}  # fmt: skip
    assert price == pytest.approx({"cnn": 3.0, "resnet": 6.0, "keras:MobileNetV3Small": 8.0})


def test_a_preset_is_priced_with_its_family():
    assert dryrun.cost_group(TrialConfig(model="seed")) == "cnn"  # the lab's net: a preset
    assert dryrun.cost_group(TrialConfig(model="keras:ResNet50V2")) == "keras:ResNet50V2"
    assert dryrun.cost_group(TrialConfig(model="resnet")) == "resnet"
