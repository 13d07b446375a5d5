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


def test_a_folder_dataset_reads_the_default_folder_space(tmp_path):
    assert Path(space_path(f"folder:{tmp_path}")).name == "folder.yaml"


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


def _dry_run_args(path: Path, tmp_path: Path, shared_data: Path) -> tuple[str, str, dict]:
    """(dataset, data dir, overrides) to dry-run a shipped space on little data: the real
    archives, a synthetic CIFAR-100 archive (none can be had here), a folder tree."""
    space = load_space(path)
    dataset = space.dataset or path.stem
    if dataset == "cifar100":
        from test_datasets import _cifar100_archive

        _cifar100_archive(tmp_path, per_class=5)
        return dataset, str(tmp_path), {"max_train_samples": 200}
    if path.stem == "folder":
        return f"folder:{shapes_tree(tmp_path / 'shapes')}", str(tmp_path), {}
    return dataset, str(shared_data), {"max_train_samples": 170 if "flowers" in dataset else 200}


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_space_dry_runs(path, tmp_path, shared_data, caplog):
    """Every model of a shipped space builds and the time estimate (halving: the plan for
    its budget) comes out, on a small subset; nothing is trained or tracked."""
    space = load_space(path)
    dataset, data_dir, overrides = _dry_run_args(path, tmp_path, shared_data)
    lines: list[str] = []
    if space.strategy == "halving":
        plan = search_mod.plan_only(space, dataset=dataset, data_dir=data_dir,
                                    overrides=overrides, printer=lines.append)  # fmt: skip
        assert plan.total_s() <= plan.budget_s and plan.quotas[0] > plan.quotas[-1]
        assert lines[-1].startswith("planned ") and "rung 0:" in "\n".join(lines)
    else:
        with caplog.at_level(logging.INFO, logger="benchmark.data"):
            est = search_mod.dry_run(space, dataset=dataset, data_dir=data_dir,
                                     overrides=overrides, printer=lines.append)  # fmt: skip
        assert est > 0 and "estimated total" in lines[-1]
        assert not any("rejected" in line for line in lines), lines
        rows = [line for line in lines[1:-1] if line.strip()]
        assert len(rows) == (len(space.grid_points()) if space.strategy == "grid" else 1)
    if path.stem == "folder":  # a folder's own image size, not upscaled to 64
        assert "image size 16 px: the images' own (all 16x16)" in caplog.text
        assert "on 18 images" in lines[-1]  # 6 of each class's 10: 2 go to val, 2 to test
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
