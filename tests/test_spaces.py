"""Every shipped space file loads, and the default folder space runs on a folder of images."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest
from folders import shapes_tree

from benchmark import search as search_mod
from benchmark.search.space import SPACES_DIR, load_space, space_path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml"))


def test_the_spaces_folder_is_the_shipped_one():
    assert SPACES_DIR.resolve() == (REPO / "search_spaces").resolve()
    assert {"folder.yaml", "cifar10.yaml", "cifar100.yaml", "flowers17.yaml"} <= {
        p.name for p in SHIPPED
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_loads(path):
    space = load_space(path)
    assert space.dimensions
    if space.strategy == "grid":
        assert space.grid_points()


def test_a_new_pruner_or_sampler_is_one_registered_function(tmp_path):
    """The extension point: a decorated function; a space names it, its keywords are the
    keys the space may give it, and the search builds it."""
    import optuna

    from benchmark.errors import UserError
    from benchmark.search.parts import PRUNERS, SAMPLERS, make_pruner, make_sampler

    @PRUNERS.register
    def patient(n_warmup_steps: int = 0, patience: int = 2):
        return optuna.pruners.PatientPruner(
            optuna.pruners.MedianPruner(n_warmup_steps=n_warmup_steps), patience=patience
        )

    @SAMPLERS.register
    def qmc(space, seed):
        return optuna.samplers.QMCSampler(seed=seed)

    try:
        path = tmp_path / "s.yaml"
        path.write_text("strategy: optuna\nspace: {dropout: {low: 0.0, high: 0.5}}\n"
                        "optuna: {n_trials: 2, sampler: qmc,\n"
                        "         pruner: {type: patient, patience: 1}}\n")  # fmt: skip
        space = load_space(str(path))
        pruner = make_pruner(space)
        assert isinstance(pruner, optuna.pruners.PatientPruner) and pruner._patience == 1
        assert isinstance(make_sampler(space, seed=0), optuna.samplers.QMCSampler)
        path.write_text(path.read_text().replace("patience: 1", "patients: 1"))
        with pytest.raises(UserError, match="patients.*n_warmup_steps, patience"):
            load_space(str(path))
    finally:
        PRUNERS.unregister("patient")
        SAMPLERS.unregister("qmc")
    with pytest.raises(UserError, match="optuna.sampler 'qmc' is not allowed; allowed: tpe"):
        load_space(str(path))


HALVING = [p for p in SHIPPED if "\nstrategy: halving" in p.read_text()]
ESTIMATED = [p for p in SHIPPED if p not in HALVING and p.name != "folder.yaml"]


def _dry_run(space, dataset: str, data_dir: str, overrides: dict) -> list[str]:
    """The lines a grid or Optuna space's dry run prints, checked for what every one must
    say: each model built (none rejected), one row each, an estimate; nothing tracked."""
    lines: list[str] = []
    est = search_mod.dry_run(space, dataset=dataset, data_dir=data_dir, overrides=overrides,
                             printer=lines.append)  # fmt: skip
    assert est > 0 and "estimated total" in lines[-1]
    assert not any("rejected" in line for line in lines), lines
    rows = [line for line in lines[1:-1] if line.strip()]
    assert len(rows) == (len(space.grid_points()) if space.strategy == "grid" else 1)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("path", ESTIMATED, ids=lambda p: p.name)
def test_every_shipped_space_dry_runs(path, tmp_path, shared_data):
    """Every model of a shipped grid or Optuna space builds and the time estimate comes
    out, on a small subset of the real data (a synthetic CIFAR-100 archive: none can be had
    here)."""
    space = load_space(path)
    overrides = {"max_train_samples": 170 if space.dataset == "flowers17" else 200}
    data_dir = shared_data
    if space.dataset == "cifar100":
        from archives import cifar100_archive

        cifar100_archive(tmp_path, per_class=5)
        data_dir = tmp_path
    _dry_run(space, space.dataset, str(data_dir), overrides)


@pytest.mark.slow
def test_the_folder_space_dry_runs_at_the_images_own_size(tmp_path, caplog):
    dataset = f"folder:{shapes_tree(tmp_path / 'shapes')}"
    space = load_space(space_path(dataset))  # what `search --dataset folder:PATH` reads
    assert Path(space.path).name == "folder.yaml"
    with caplog.at_level(logging.INFO, logger="benchmark.data"):
        lines = _dry_run(space, dataset, str(tmp_path), {})
    assert "image size 16 px: the images' own (all 16x16)" in caplog.text  # not upscaled to 64
    assert "on 18 images" in lines[-1]  # 6 of each class's 10: 2 go to val, 2 to test


@pytest.mark.slow
@pytest.mark.parametrize("path", HALVING, ids=lambda p: p.name)
def test_every_shipped_halving_space_plans_its_budget(path, shared_data):
    """A halving space's dry run: the probe timed and a plan of shrinking rungs that fits
    the budget, on a small subset; nothing is trained or tracked."""
    space = load_space(path)
    lines: list[str] = []
    overrides = {"max_train_samples": 170 if space.dataset == "flowers17" else 200}
    plan = search_mod.plan_only(space, dataset=space.dataset, data_dir=str(shared_data),
                                overrides=overrides, printer=lines.append)  # fmt: skip
    assert plan.total_s() <= plan.budget_s and plan.quotas[0] > plan.quotas[-1]
    assert lines[-1].startswith("planned ") and "rung 0:" in "\n".join(lines)
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
