"""The findings in words: the best model, what augmentation did, what test-time augmentation
bought, who overfits, and how accuracy relates to parameters and training time (a trend is
claimed only from enough configurations; the Pareto front is always named).

May import benchmark.metrics and benchmark.report.stats only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from benchmark import metrics as M
from benchmark.report.stats import (
    CI_LEVEL,
    Effect,
    best_by_hand_row,
    best_row,
    has_value,
    mean_std,
    num,
    pareto_front,
    searched,
    spearman,
    unconfirmed_above,
)

MAX_NAMED = 12  # configurations named in one sentence; the tables have them all
MIN_TREND = 5  # configurations needed before the findings claim a trend


def findings(board: pd.DataFrame, effects: list[Effect]) -> str:
    """Plain answers to the lab's questions, generated from the numbers above."""
    if board.empty:
        return "No trial completed, so there is nothing to compare yet."
    best = best_row(board)
    n_cfg = len(board)
    found = searched(board)  # hand-trained configurations are shown, never the best
    among = "" if best.name == found.index[0] else f" among those run on {best['n']} seeds"
    if len(found) < n_cfg and best.name != board.index[0]:
        among += " that a search found" if among else " among the configurations a search found"
    out = [
        f"**Best model.** Of {n_cfg} configuration(s), `{best['label']}` has the highest "
        f"validation accuracy{among} ({mean_std(best, M.VAL_ACCURACY)}, {best['n']} seed(s)); "
        f"its test accuracy is {mean_std(best, M.TEST_ACCURACY)} with "
        f"{num(best[M.PARAM_COUNT], 0)} parameters and {mean_std(best, M.TRAIN_TIME, 1)} s "
        "of training."
    ]
    if len(above := unconfirmed_above(board, best)):
        names = ", ".join(f"`{r['label']}` ({mean_std(r, M.VAL_ACCURACY)}, {r['n']} seed(s))"
                          for _, r in above.head(MAX_NAMED).iterrows())  # fmt: skip
        out.append(
            f"Ranked above it on validation but run on fewer seeds: {names}. One seed's "
            "validation accuracy moves by a point or two, so these are candidates, not "
            "winners: train them with more seeds (`--seed 1`, `--seed 2`) to compare."
        )
    if (hand := best_by_hand_row(board)) is not None and hand.name != best.name:
        out.append(_by_hand_sentence(board, hand))
    by_test = board.dropna(subset=[M.TEST_ACCURACY]).sort_values(
        [M.TEST_ACCURACY, "label"], ascending=[False, True]
    )
    if len(by_test) and by_test.iloc[0]["label"] != best["label"]:
        out.append(
            f"On the test split `{by_test.iloc[0]['label']}` scores highest "
            f"({mean_std(by_test.iloc[0], M.TEST_ACCURACY)}); validation picks the "
            "model, so that is not the winner."
        )
    out.append(_augmentation_sentence(effects))
    if tta := _tta_sentence(board, best):
        out.append(tta)
    over = board[board["overfit"].map(lambda v: v == "yes" or (" yes" in v and v[0] != "0"))]
    if len(over):
        names = ", ".join(f"`{x}`" for x in over["label"][:MAX_NAMED])
        if len(over) > MAX_NAMED:
            names += f" and {len(over) - MAX_NAMED} more (see the leaderboard)"
        out.append(
            f"**Overfitting.** {len(over)} of {n_cfg} configuration(s) overfit on at "
            f"least one seed: {names}."
        )
    else:
        out.append(
            f"**Overfitting.** None of the {n_cfg} configuration(s) overfit by the rule above."
        )
    out.append(_relation("parameter count", "more parameters", "fewer parameters",
                         board[M.PARAM_COUNT], board))  # fmt: skip
    # A wall time measured only beside other load says little about the configuration.
    timing = board["timing"] if "timing" in board else pd.Series("", index=board.index)
    contended = timing == "contended"
    relation = _relation("training time", "longer training", "shorter training",
                         board[M.TRAIN_TIME].where(~contended), board)  # fmt: skip
    if n := int(contended.sum()):
        relation += f" ({n} configuration(s) timed only beside other load left out.)"
    out.append(relation)
    return "\n\n".join(out)


def _by_hand_sentence(board: pd.DataFrame, hand: pd.Series) -> str:
    """Hand-trained configurations stay in the leaderboard but are never the best: say so."""
    n = int(board["by_hand"].astype(bool).sum())
    return (
        f"**Trained by hand.** {n} configuration(s) were trained with `train`, outside any "
        f"search (marked in the leaderboard); the best of them, `{hand['label']}` "
        f"({mean_std(hand, M.VAL_ACCURACY)} validation, {mean_std(hand, M.TEST_ACCURACY)} "
        f"test, {hand['n']} seed(s)), is the JSON summary's `best_by_hand`. The best "
        "configuration above is chosen among those a search found."
    )


def _augmentation_sentence(effects: list[Effect]) -> str:
    if not effects:
        return (
            "**Augmentation.** No architecture was trained both with and without "
            "augmentation, so its effect cannot be read here."
        )
    parts = []
    for policy in sorted({e.policy for e in effects}):
        es = [e for e in effects if e.policy == policy and has_value(e.test[0])]
        if not es:
            continue
        up = sum(e.test[0] > 0 for e in es)
        sure = sum(has_value(e.test[1]) and e.test[1] > 0 for e in es)
        down = sum(has_value(e.test[2]) and e.test[2] < 0 for e in es)
        gaps = [e.gap[0] for e in es if has_value(e.gap[0])]
        times = [e.time[0] for e in es if has_value(e.time[0])]
        text = (
            f"`{policy}` raised test accuracy on {up} of {len(es)} architecture(s) "
            f"(mean Δ {num(np.mean([e.test[0] for e in es]), 4, True)}"
        )
        if any(has_value(e.test[1]) for e in es):
            text += f"; {CI_LEVEL:.0%} CI above zero for {sure}, below zero for {down}"
        text += ")"
        if gaps:
            text += (
                f"; the overfit gap shrank on {sum(g < 0 for g in gaps)} of {len(gaps)} "
                f"(mean Δ {num(np.mean(gaps), 4, True)})"
            )
        if times:
            text += f"; mean Δ training time {num(np.mean(times), 1, True)} s"
        parts.append(text + ".")
    deltas = [e.test[0] for e in effects if has_value(e.test[0])]
    verdict = (
        "helped" if all(d > 0 for d in deltas)
        else "did not help" if all(d <= 0 for d in deltas)
        else "helped some architectures, not others"
    )  # fmt: skip
    return f"**Augmentation {verdict}.** " + " ".join(parts)


def _tta_sentence(board: pd.DataFrame, best: pd.Series) -> str:
    """Test-time augmentation, measured pairwise: each configuration that scored it (`--tta`)
    tested the same weights with and without it, so Δ = TTA − plain is the views' effect
    alone; its mean over configurations, with a paired t-interval. Empty when none scored it.
    A measure of the views, never a choice: validation still picks the model."""
    if M.TEST_ACCURACY_TTA not in board:
        return ""
    d = (board[M.TEST_ACCURACY_TTA] - board[M.TEST_ACCURACY]).dropna()
    if d.empty:
        return ""
    text = (
        f"**Test-time augmentation.** On the {len(d)} configuration(s) that scored it, it "
        f"changed test accuracy by {num(d.mean(), 4, True)} on average"
    )
    if len(d) >= 2 and d.std() > 0:
        lo, hi = stats.t.interval(CI_LEVEL, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        text += f" ({CI_LEVEL:.0%} CI [{num(lo, 4, True)}, {num(hi, 4, True)}])"
    text += f" and raised it on {int((d > 0).sum())} of {len(d)}"
    if best.name in d.index:
        text += (f"; the best configuration's {mean_std(best, M.TEST_ACCURACY)} becomes "
                 f"{mean_std(best, M.TEST_ACCURACY_TTA)}")  # fmt: skip
    return text + " (the same weights, scored as the mean over views of each image)."


def _relation(what: str, more: str, less: str, xs: pd.Series, board: pd.DataFrame) -> str:
    """Spearman's ρ of validation accuracy against xs, and the Pareto front in words.

    No trend is claimed from fewer than MIN_TREND configurations: ρ of 4 points is ±1 one
    time in 12 by chance alone. The Pareto front is a fact of the table and always named.
    """
    head = f"**Accuracy vs {what}.**"
    ok = xs.notna() & board[M.VAL_ACCURACY].notna()
    labels = list(board.loc[ok, "label"])
    front = pareto_front(list(xs[ok]), list(board.loc[ok, M.VAL_ACCURACY]))
    named = (
        f"No configuration with {less} scores higher than these (the Pareto front): "
        + ", ".join(f"`{labels[i]}`" for i in front)
        + "."
    )
    rho = spearman(xs, board[M.VAL_ACCURACY])
    if ok.sum() < MIN_TREND or not has_value(rho):
        return (
            f"{head} Too few configurations to tell a trend ({ok.sum()}; {MIN_TREND} with "
            f"distinct values needed). " + (named if front else "")
        ).rstrip()
    trend = (
        f"those with {more} tended to score higher" if rho >= 0.3
        else f"those with {less} tended to score higher" if rho <= -0.3
        else f"validation accuracy shows no clear relation to {what}"
    )  # fmt: skip
    return (
        f"{head} Over {ok.sum()} configurations {trend} (Spearman ρ = {num(rho, 2, True)}). "
        + named
    )
