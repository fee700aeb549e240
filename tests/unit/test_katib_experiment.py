"""The pieces of the Katib backend that need no cluster: values to Katib's strings and back,
numbers as Katib's StdOut filter reads them, trial counts, options, and how Katib's trial and
experiment conditions map onto run statuses."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

import kfnb
from kfnb.backends import BackendError
from kfnb.tuning import SpaceError, StudySpec
from kfnb.tuning.experiment import trial_counts
from kfnb.tuning.katib_options import check_name, experiment_name, parse_options
from kfnb.tuning.katib_study import _study_status, _trial_status
from kfnb.tuning.katib_values import number_text, typed
from kfnb.tuning.space import _text
from kfnb.tuning.target import Made, make_target
from kfnb.tuning.trial_pod import metric_line

#: Katib's default StdOut filters (pkg/metricscollector/v1beta1/common/const.go): >= 0.17, older
FILTERS = (
    r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",
    r"([\w|-]+)\s*=\s*((-?\d+)(\.\d+)?)",
)


def fit(lr: float = 0.1, layers: int = 2) -> None:
    pass


SPACE = {
    "lr": kfnb.Float(0.001, 0.01, step=0.003),
    "log": kfnb.Float(1e-6, 1e-2, log=True),
    "k": kfnb.Int(1, 9, step=4),
    "mode": kfnb.Choice(["a", "b c", "true"]),
    "flag": kfnb.Choice([True, False, None]),
    "rate": kfnb.Choice([0.1, 1e-05, 2, 3.5]),
}


def test_katibs_strings_come_back_as_the_spaces_values() -> None:
    for name, dist in SPACE.items():
        values = dist.grid(name) if not isinstance(dist, kfnb.Float) or dist.step else [1e-6, 0.003]
        for value in values:
            back = typed(SPACE, name, _text(value))
            assert back == value and type(back) is type(value), (name, value, back)
    assert typed(SPACE, "k", "5.0") == 5  # some suggestion services write ints as floats
    assert typed(SPACE, "rate", "0.10") == 0.1  # a discrete value spelled otherwise
    assert typed(SPACE, "rate", "1e-05") == 1e-05
    assert typed(SPACE, "other", "x") == "x"  # not in the space: as given
    for name, text in (("k", "5.5"), ("lr", "fast"), ("mode", "c"), ("rate", "0.3")):
        with pytest.raises(SpaceError, match=f"Katib gave {name!r} the value"):
            typed(SPACE, name, text)


@pytest.mark.parametrize("value", [0.1, 1e-05, 3.0, -0.5, 1e20, 123456.789, -2.5e-12, 0.0])
def test_numbers_are_written_so_every_katib_filter_reads_them_whole(value: float) -> None:
    text = number_text(value)
    assert float(text) == value
    for pattern in FILTERS:
        (match,) = re.findall(pattern, f"accuracy={text}")
        assert match[0] == "accuracy" and match[1] == text


def test_pythons_own_spelling_is_misread_by_older_katib() -> None:
    """Why ``number_text``: an older filter reads ``1e-05`` as 1."""
    assert re.findall(FILTERS[1], f"x={1e-05!r}")[0][1] == "1"
    assert re.findall(FILTERS[1], f"x={number_text(1e-05)}")[0][1] == "0.00001"


def test_a_metric_line_has_the_time_katibs_median_stop_needs() -> None:
    line = metric_line("val-acc", 0.25, 1765000000.5)
    assert line == "2025-12-06T05:46:40.500000Z val-acc=0.25"
    assert metric_line("acc", math.nan, 0) is None
    assert metric_line("acc", math.inf, 0) is None
    assert metric_line("val.acc", 1.0, 0) is None  # a name Katib cannot read


def spec(**kw: Any) -> StudySpec:
    args: dict[str, Any] = {"space": {"k": kfnb.Int(1, 4)}, "objective": "acc"}
    args.update(kw)
    return StudySpec(**args).check()


def test_trial_counts_are_what_katib_accepts() -> None:
    assert trial_counts(spec(trials=10, parallel=3)) == {
        "maxTrialCount": 10,
        "parallelTrialCount": 3,
    }
    assert trial_counts(spec(trials=2, parallel=5, max_failed=9)) == {
        "maxTrialCount": 2,
        "parallelTrialCount": 2,
        "maxFailedTrialCount": 2,
    }
    grid = spec(algorithm="grid", trials=50, parallel=2)
    assert trial_counts(grid)["maxTrialCount"] == 4  # the grid's points
    assert trial_counts(grid, 3)["maxTrialCount"] == 3


def notebook_made() -> Made:
    return Made("nb.ipynb", pipeline=object(), fixed={}, metadata={})


def test_options_are_typed_and_checked() -> None:
    made = make_target(fit, None, ())
    opts = parse_options({"nodes": "2", "gpus_per_node": 4, "image": "x:1"}, made)
    assert (opts.nodes, opts.gpus_per_node, opts.procs_per_node, opts.image) == (2, 4, 1, "x:1")
    with pytest.raises(BackendError, match="did you mean 'namespace'"):
        parse_options({"namespce": "a"}, made)
    with pytest.raises(BackendError, match="gpus_per_node"):
        parse_options({"gpus": 1}, made)
    with pytest.raises(BackendError, match="takes a whole number"):
        parse_options({"nodes": "two"}, made)
    with pytest.raises(BackendError, match="cannot be 0"):
        parse_options({"nodes": 0}, made)
    with pytest.raises(BackendError, match="procs_per_node, nodes shape"):
        parse_options({"nodes": 2, "procs_per_node": 2}, notebook_made())
    assert parse_options({"gpus": "1", "name": "my-study"}, notebook_made()).gpus == 1


def test_experiment_names_fit_katibs_rule() -> None:
    made = make_target(fit, None, ())
    assert experiment_name(made, "20261207-101010-a1b2c3") == "kfnb-fit-a1b2c3"
    assert experiment_name(made, "") == experiment_name(made, "")  # a dry run's is stable
    long = Made(
        "x", pipeline=type("P", (), {"name": "Churn Model: " + "v" * 80})(), fixed={}, metadata={}
    )
    name = experiment_name(long, "20261207-101010-a1b2c3")
    assert len(name) <= 40 and name.startswith("kfnb-churn-model-v") and name.endswith("-a1b2c3")
    for bad in ("Study", "my_study", "-x", "x" * 41, "study-"):
        with pytest.raises(BackendError, match="cannot name a Katib experiment"):
            check_name(bad)


def trial(*conditions: str, **observed: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "exp-abc"},
        "status": {
            "conditions": [
                {"type": c, "status": "True", "message": f"{c} happened"} for c in conditions
            ]
            + [{"type": "Running", "status": "False"}],
            "observation": {"metrics": [{"name": k, "latest": v} for k, v in observed.items()]},
        },
    }


@pytest.mark.parametrize(
    ("conditions", "observed", "status", "error"),
    [
        ((), {}, "PENDING", None),
        (("Created",), {}, "PENDING", None),
        (("Created", "Running"), {}, "RUNNING", None),
        (("Created", "Succeeded"), {"acc": "0.9"}, "SUCCEEDED", None),
        (("Created", "Succeeded"), {"acc": "unavailable"}, "FAILED", "without a value of 'acc'"),
        (("Created", "Failed"), {}, "FAILED", "Katib trial exp-abc failed: Failed happened"),
        (("Created", "MetricsUnavailable"), {}, "FAILED", "metrics-collector-injection=enabled"),
        (("Created", "Succeeded", "EarlyStopped"), {"acc": "0.5"}, "PRUNED", None),
        (("Created", "Killed"), {}, "CANCELED", None),
    ],
)
def test_a_katib_trials_conditions_are_a_run_status(
    conditions: tuple[str, ...], observed: dict[str, str], status: str, error: str | None
) -> None:
    found, why = _trial_status(trial(*conditions, **observed), "acc")
    assert found == status
    assert (why is None) if error is None else (error in str(why))


def test_an_experiments_conditions_are_the_studys_status() -> None:
    def exp(*conditions: tuple[str, str]) -> dict[str, Any]:
        return {
            "status": {
                "conditions": [
                    {"type": t, "status": s, "reason": f"Experiment{t}", "message": f"{t}!"}
                    for t, s in conditions
                ]
            }
        }

    assert _study_status(exp(), False) == ("PENDING", None)
    assert _study_status(exp(("Created", "True")), False) == ("PENDING", None)
    assert _study_status(exp(("Created", "True"), ("Running", "True")), False) == ("RUNNING", None)
    restarting = exp(("Succeeded", "False"), ("Restarting", "True"))
    assert _study_status(restarting, True) == ("RUNNING", None)
    done = exp(("Running", "False"), ("Succeeded", "True"))
    assert _study_status(done, True) == ("SUCCEEDED", None)
    assert _study_status(done, False) == (
        "FAILED",
        "no trial succeeded (Katib: ExperimentSucceeded)",
    )
    assert _study_status(exp(("Failed", "True")), True) == ("FAILED", "Failed!")
