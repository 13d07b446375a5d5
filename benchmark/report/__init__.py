"""`python -m benchmark report`: markdown tables and figures that answer the lab's questions.

Reads MLflow and never retrains. One `mlflow.search_runs` call loads every run of the store
(the index compares datasets, so it needs them all); metric histories are fetched only for
the learning curves of the top configurations. Repeated seeds of one configuration (same
params but `seed`) become mean ± std (n seeds). The same runs give byte-identical markdown:
rows are sorted on stable keys, numbers have fixed formats, and dates come from the runs.

The report is the last stage: it imports benchmark.errors, config, metrics, runtime (and
what they import), never the CLI or a search. Its modules, each importing only those above:

- text: a setting's value to 4 significant digits, long prose lines broken into sentences
- load: MLflow runs -> DataFrames (roles, trials by dataset, a study's runs), column helpers
- stats: leaderboard numbers, effects and intervals, rank correlation, Pareto front, formats
- markdown: tables and the table sections, the README index
- header: the report's head (data, code, command, searches)
- ids: the configuration ids C1, C2, ... every table uses, and their legend
- findings: the findings in words
- matters: What matters (fANOVA per study) and Reference points
- summary: the JSON summary of the best configuration
- speed: time to accuracy (the least training time whose mean test accuracy reaches a threshold)
- figures: the PNG figures and augmentation previews
- build: one report per dataset, write_reports

This module re-exports what the CLI, the search and the tests use.
"""

from __future__ import annotations

from benchmark.report.build import Report, build_report, write_reports
from benchmark.report.findings import _relation
from benchmark.report.header import searches
from benchmark.report.ids import config_ids
from benchmark.report.load import (
    DatasetRuns,
    P,
    T,
    X,
    _annotate,
    col,
    is_trial,
    load_runs,
    load_study_runs,
    slug,
    split_by_dataset,
)
from benchmark.report.markdown import table
from benchmark.report.speed import time_to_accuracy
from benchmark.report.stats import delta_ci, mean_std, num, pareto_front, spearman, summarize

__all__ = [
    "DatasetRuns",
    "P",
    "Report",
    "T",
    "X",
    "_annotate",  # tests build annotated runs without a store
    "_relation",  # tests read one findings sentence
    "build_report",
    "col",
    "config_ids",
    "delta_ci",
    "is_trial",
    "load_runs",
    "load_study_runs",
    "mean_std",
    "num",
    "pareto_front",
    "searches",
    "slug",
    "spearman",
    "split_by_dataset",
    "summarize",
    "table",
    "time_to_accuracy",
    "write_reports",
]
