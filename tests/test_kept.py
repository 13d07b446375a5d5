"""What a search keeps: each trial's model, its dataset inputs and per-class results, the
registry's champion, `predict` on image files and `mlflow models serve`.

One tiny search through the real CLI (`python -m benchmark search`, a subprocess) against a
real SQLite store in a temp folder; the tests read that store as a user would.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.data import load_dataset
from benchmark.search import champion
from benchmark.search.space import load_space

REPO = Path(__file__).resolve().parents[1]
CHAMPION = "models:/cnn-benchmark-cifar10@champion"
SPACE = """
    strategy: grid
    fixed: {epochs: 1, model: seed, steps_per_execution: 4}
    space:
      augmentation: {values: [none, grayscale]}
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory, session_cache, shared_data):
    """A two-trial search through the CLI, in its own store; its output and its trials."""
    tmp = tmp_path_factory.mktemp("kept")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    (tmp / "tiny.yaml").write_text(textwrap.dedent(SPACE))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENCHMARK_CACHE_DIR": str(session_cache),
           "BENCHMARK_IN_PROCESS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-m", "benchmark", "search", "--dataset", "cifar10", "--space",
         str(tmp / "tiny.yaml"), "--data-dir", str(shared_data), "--max-train-samples", "200"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    trials = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="tags.`benchmark.role` = 'trial'")  # fmt: skip
    (parent,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                   filter_string="tags.`benchmark.role` = 'search'")  # fmt: skip
    data = load_dataset("cifar10", data_dir=shared_data, max_train_samples=200)
    return {"tmp": tmp, "uri": uri, "env": env, "out": out, "trials": trials,
            "parent": parent, "data": data}  # fmt: skip


@pytest.fixture
def in_store(store, monkeypatch):
    """This test reads (and the in-process CLI writes) the module's store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    mlflow.set_tracking_uri(store["uri"])
    return store


def _per_class(run_id: str) -> dict:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="per_class.json")
    return json.loads(Path(path).read_text())


def test_each_trial_logs_a_model_that_predicts_what_the_trial_measured(in_store):
    data = in_store["data"]
    assert len(in_store["trials"]) == 2
    for run in in_store["trials"]:
        uri = run.data.tags[M.TAG_MODEL_URI]
        model = mlflow.pyfunc.load_model(uri)
        probs = model.predict(data.x_test)
        assert list(probs.columns) == list(data.class_names)  # the signature's class names
        shape = model.metadata.get_input_schema().inputs[0].shape
        assert tuple(shape) == (-1, 32, 32, 3)
        results = _per_class(run.info.run_id)
        first = np.array(results["sample_probabilities"])
        np.testing.assert_allclose(probs.to_numpy()[: len(first)], first, rtol=0, atol=1e-6)
        accuracy = float(np.mean(probs.to_numpy().argmax(axis=1) == data.y_test))
        assert accuracy == pytest.approx(run.data.metrics[M.TEST_ACCURACY], abs=1e-6)


def test_trials_log_their_three_splits_as_dataset_inputs(in_store):
    for run in in_store["trials"]:
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"training", "validation", "test"}
        assert inputs["training"].name == "cifar10-train" and inputs["test"].name == "cifar10-test"
        assert {d.digest for d in inputs.values()} == {run.data.tags[M.TAG_DIGEST]}
        assert "cifar-10-python.tar.gz" in inputs["test"].source
    experiment = mlflow.get_experiment(in_store["parent"].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # the search's parent row (its trials are folded under it) shows datasets and the model
    parent = in_store["parent"]
    assert {i.dataset.name for i in parent.inputs.dataset_inputs} == {
        "cifar10-train", "cifar10-val", "cifar10-test"}  # fmt: skip
    best = mlflow.get_run(parent.data.tags[M.TAG_BEST_RUN])
    (output,) = parent.outputs.model_outputs
    assert f"models:/{output.model_id}" == best.data.tags[M.TAG_MODEL_URI]


def test_confusion_matrix_sums_to_the_test_size_and_has_a_figure(in_store):
    client = mlflow.MlflowClient()
    for run in in_store["trials"]:
        results = _per_class(run.info.run_id)
        m = np.array(results["confusion_matrix"])
        assert m.shape == (10, 10) and m.sum() == int(run.data.params["test_size"]) == 2000
        assert np.trace(m) / m.sum() == pytest.approx(run.data.metrics[M.TEST_ACCURACY], abs=1e-6)
        assert set(results["classes"]["cat"]) >= {"accuracy", "precision", "recall"}
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"confusion_matrix.png", "per_class.json"} <= names


def test_the_champion_is_the_best_trial_and_moves_only_for_a_better_search(in_store):
    assert "cnn-benchmark-cifar10 version 1 is the new champion" in in_store["out"].stderr
    client = mlflow.MlflowClient()
    best = in_store["parent"].data.tags[M.TAG_BEST_RUN]
    v1 = client.get_model_version_by_alias("cnn-benchmark-cifar10", "champion")
    assert v1.run_id == best
    assert "validation accuracy" in v1.description and "augmentation=" in v1.description
    other = next(r.info.run_id for r in in_store["trials"] if r.info.run_id != best)
    worse = champion.crown("cifar10", [other], [0.0], [0.0], study_name="worse")
    assert not worse.champion and "does not beat the champion, version 1" in worse.message
    held = client.get_model_version_by_alias("cnn-benchmark-cifar10", "champion")
    assert held.version == v1.version
    better = champion.crown("cifar10", [other], [0.99], [0.5], study_name="better")
    now = client.get_model_version_by_alias("cnn-benchmark-cifar10", "champion")
    assert better.champion and str(now.version) == better.version and now.run_id == other
    # put the search's own winner back for the tests that use the champion
    client.set_registered_model_alias("cnn-benchmark-cifar10", "champion", v1.version)


def _write_images(folder: Path, images: np.ndarray) -> list[Path]:
    folder.mkdir()
    paths = []
    for i, img in enumerate(images):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(img).save(paths[-1])
    (folder / "broken.jpg").write_bytes(b"not an image")
    return paths


def test_predict_on_a_folder_skips_the_broken_file(in_store, tmp_path, capsys):
    data = in_store["data"]
    _write_images(tmp_path / "photos", data.x_test[:3])
    out_csv = tmp_path / "p.csv"
    code = main(["predict", "--model", CHAMPION, str(tmp_path / "photos"), "--output",
                 str(out_csv)])  # fmt: skip
    got = capsys.readouterr()
    assert code == 0, got.err
    lines = [x for x in got.out.splitlines() if x.startswith(str(tmp_path))]
    assert len(lines) == 3 and len(lines[0].split()) == 1 + 2 * 3  # path, top-3 classes and p
    assert "skipped 1 unreadable file(s)" in got.err and "broken.jpg" in got.err
    expected = mlflow.pyfunc.load_model(CHAMPION).predict(data.x_test[:3])
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["class1"] for r in rows] == list(expected.idxmax(axis=1))


def test_predict_with_an_unknown_model_is_one_line_and_exit_2(in_store, tmp_path, capsys):
    _write_images(tmp_path / "photos", in_store["data"].x_test[:1])
    code = main(["predict", "--model", "models:/cnn-benchmark-nosuch@champion",
                 str(tmp_path / "photos")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: cannot load model")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_with_class_probabilities(in_store):
    port = _free_port()
    env = {**in_store["env"], "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ.get('PATH', '')}"}  # uvicorn, from the same environment  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", CHAMPION, "--env-manager",
         "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=in_store["tmp"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(1)
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        images = in_store["data"].x_test[:2]
        body = json.dumps({"inputs": images.tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as answer:
            predictions = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert len(predictions) == 2 and set(predictions[0]) == set(in_store["data"].class_names)
    expected = mlflow.pyfunc.load_model(CHAMPION).predict(images)
    np.testing.assert_allclose(
        [[p[c] for c in expected.columns] for p in predictions], expected.to_numpy(), atol=1e-6
    )


def test_log_models_best_keeps_only_the_winners_model(tmp_path, shared_data, caplog):
    caplog.set_level("INFO", logger="benchmark.search.champion")
    (tmp_path / "space.yaml").write_text(textwrap.dedent(SPACE))
    lines: list[str] = []
    from benchmark.search import run_search

    summary = run_search(load_space(tmp_path / "space.yaml"), dataset="cifar10",
                         data_dir=str(shared_data), overrides={"max_train_samples": 100},
                         storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                         printer=lines.append, log_models="best")  # fmt: skip
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.`benchmark.role` = 'trial'")  # fmt: skip
    kept = [r for r in runs if M.TAG_MODEL_URI in r.data.tags]
    assert [r.info.run_id for r in kept] == [summary.best_run_id]
    assert "deleted 1 other trial model" in caplog.text
    assert all(line.startswith("[") for line in lines)  # progress lines only
    assert mlflow.MlflowClient().get_model_version_by_alias(
        "cnn-benchmark-cifar10", "champion").run_id == summary.best_run_id  # fmt: skip
    on_disk = list(Path("mlruns").glob("*/models/*/artifacts/MLmodel"))  # conftest's cwd
    assert len(on_disk) == 1


def test_report_says_where_the_best_configuration_fails(in_store, tmp_path):
    from benchmark.report import write_reports

    write_reports("cifar10", tmp_path / "out", in_store["uri"])
    md = (tmp_path / "out" / "cifar10.md").read_text()
    section = md.split("## Where it fails\n\n")[1].split("\n## ")[0]
    assert "on the test split (2000 images" in section
    assert "| class | accuracy | precision | test images | most often taken for |" in section
    assert "| true class | predicted as | images | share of the true class |" in section
    assert "![Confusion matrix of the best configuration](cifar10/confusion_matrix.png)" in section
    assert (tmp_path / "out" / "cifar10" / "confusion_matrix.png").stat().st_size > 1000


def test_mlflow_run_predict_entry_point(in_store, tmp_path):
    _write_images(tmp_path / "photos", in_store["data"].x_test[:2])
    out = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "predict", "--env-manager",
         "local", "-P", f"model={CHAMPION}", "-P", f"path={tmp_path / 'photos'}", "-P",
         f"output={tmp_path / 'p.csv'}"],
        cwd=in_store["tmp"], env=in_store["env"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    with (tmp_path / "p.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string="tags.`benchmark.role` = 'predict'")  # fmt: skip
    assert (
        "Classified 2 image(s)" in run.data.tags[M.TAG_NOTE]
        and "skipped 1" in run.data.tags[M.TAG_NOTE]
    )
