"""MLflow search filters quote user-chosen values one way: a study name with a quote or a
space still finds its runs, and one no filter can express says so in one line."""

from __future__ import annotations

import mlflow
import pytest

from benchmark import metrics as M
from benchmark.errors import UserError
from benchmark.report import load_study_runs
from benchmark.runfilter import literal
from benchmark.search.study import study_parents


@pytest.mark.parametrize("name", ["it's mine", "two words", 'say "hi"'])
def test_a_study_name_with_quotes_or_spaces_finds_its_runs(name):
    client = mlflow.MlflowClient()
    parent = client.create_run("0", tags={"study_name": name, M.TAG_ROLE: "search"})
    trial = client.create_run("0", tags={"study_name": name, M.TAG_ROLE: "trial"})
    client.create_run("0", tags={"study_name": "other", M.TAG_ROLE: "search"})
    assert [r.info.run_id for r in study_parents(name)] == [parent.info.run_id]
    assert set(load_study_runs(name).trials["run_id"]) == {trial.info.run_id}


def test_a_value_with_both_quote_kinds_is_one_clear_error():
    assert literal("flowers17") == "'flowers17'" and literal(3) == "'3'"
    with pytest.raises(UserError, match="holds both ' and \": MLflow's search filters"):
        literal("""it's "both\"""")
