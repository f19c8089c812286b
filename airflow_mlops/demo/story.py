"""The embedded demo: real Airflow (SQLite metadata), a local MLflow store and synthetic data in SQLite.

Everything lives in one project-local folder (default ``.demo/``). The story:
1. the first continuous-training run registers the first model and makes it the champion;
2. a week later the data has grown; the challenger is judged by the gate against the champion;
3. an upstream bug injects bad rows; validation catches it and the run fails before training;
4. the bug is fixed and the day reloaded; the drift DAG finds no drift, so no retraining is triggered;
5. the population drifts; the drift DAG confirms it and emits an event on the drift Asset;
6. the event starts the continuous-training DAG (as the scheduler would), and the gate judges the retrained
   challenger against the stale champion;
7. drift persists the next day, but the cooldown holds the next event back;
8. canaries: a challenger trained on the drifted months, and one trained on mislabelled data, are registered;
9. day by day both models score the day's loans and each canary looks at the matured labels: the better
   challenger goes through shadow mode and a 50% step to champion, the mislabelled one is rolled back.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from airflow_mlops.demo import canary_story
from airflow_mlops.demo.environment import (FIRST_RUN, MODEL, DemoEnvironment, grow_data, prepare_home,
                                            reload_day)
from airflow_mlops.demo.harness import run_asset_triggered, run_dag, unpause

DRIFT_CHECK_AFTER_DAYS = 56  # the drifted weeks fill the holdout and most of the retraining window


def registry_summary(environment: DemoEnvironment) -> dict:
    from mlflow import MlflowClient

    from airflow_mlops.core.names import ALIASES
    from airflow_mlops.hooks.mlflow import MLflowHook

    client = MlflowClient(tracking_uri=environment.mlflow_uri, registry_uri=environment.mlflow_uri)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    hook = MLflowHook("mlflow_default")
    aliases = {alias: hook.alias_version(MODEL, alias) for alias in ALIASES}
    return {"versions": sorted(int(v.version) for v in versions), "aliases": aliases}


@contextmanager
def output_to(log_path: Path):
    """Send everything written to this process's stdout/stderr (Airflow's task logs, MLflow, tracebacks of the
    failures the story expects) to ``log_path``; yield a stream to the real console for progress lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            console.close()


def run_demo(home: Path) -> int:
    home = home.resolve()
    print(f"airflow-mlops demo in {home} (Airflow metadata, MLflow store and data, all local)", flush=True)
    print(f"Task logs and library output go to {home / 'demo.log'}", flush=True)
    environment = prepare_home(home, config_overrides={"retries": 0})
    os.environ.update(environment.env)
    with output_to(home / "demo.log") as console:
        return _story(environment, console)


def _story(environment: DemoEnvironment, console) -> int:
    def print(*parts):  # progress goes to the console; everything else to demo.log
        console.write(" ".join(str(p) for p in parts) + "\n")

    ct, drift = f"mlops_ct__{MODEL}", f"mlops_drift__{MODEL}"
    steps = []

    grow_data(environment, FIRST_RUN)
    print(f"[1/9] first continuous-training run for {FIRST_RUN} ...")
    steps.append(("first model", run_dag(ct, FIRST_RUN)))
    unpause(ct)  # switched on, as in the UI: drift events can now start it

    second = FIRST_RUN + timedelta(days=7)
    grow_data(environment, second)
    print(f"[2/9] a week later ({second}): the challenger meets the champion ...")
    steps.append(("challenger vs champion", run_dag(ct, second)))

    third = second + timedelta(days=7)
    bad_day = third - timedelta(days=2)
    grow_data(environment, third, bad_days=frozenset({bad_day}))
    print(f"[3/9] {third}: an upstream bug wrote bad rows ...")
    steps.append(("bad data", run_dag(ct, third)))

    reload_day(environment, bad_day)
    print(f"[4/9] the bug is fixed and {bad_day} reloaded; drift check for {third} ...")
    steps.append((f"drift check {third}", run_dag(drift, third)))

    drift_from = third + timedelta(days=1)
    drifted = third + timedelta(days=DRIFT_CHECK_AFTER_DAYS)
    grow_data(environment, drifted, drift_from=drift_from)
    print(f"[5/9] the population drifts from {drift_from}; drift check for {drifted} ...")
    steps.append((f"drift check {drifted}", run_dag(drift, drifted)))

    print("[6/9] the drift event starts continuous training ...")
    steps.append(("retraining triggered by the drift event", run_asset_triggered(ct) or {}))

    next_day = drifted + timedelta(days=1)
    grow_data(environment, next_day, drift_from=drift_from)
    print(f"[7/9] drift check for {next_day} ...")
    steps.append((f"drift check {next_day}", run_dag(drift, next_day)))

    print(f"[8/9] canaries: two more models on these loans get challengers ({canary_story.GOOD}, "
          f"{canary_story.BAD}) ...")
    canary_steps: list[tuple[str, dict]] = []
    canary_story.start_canaries(environment, clean_champion=third, drifted_champion=drifted - timedelta(days=7),
                                challenger=next_day, steps=canary_steps)
    print(f"[9/9] day by day from {next_day}: score with both models, look at the matured labels ...")
    looks = canary_story.run_canaries(environment, next_day, drift_from)

    print_summary(environment, steps + canary_steps, out=print)
    canary_story.canary_summary(looks, out=print)
    print_serve_hint(environment, out=print)
    results = [run.get("results", {}) for _, run in steps]
    tasks = [run.get("tasks", {}) for _, run in steps]
    ok = (results[0].get("promote") is not None and results[1].get("evaluate_gate") is not None
          and tasks[2].get("validate") == "failed"
          and tasks[3].get("emit_drift_event") == "skipped" and results[3]["check_drift"]["status"] == "no_drift"
          and tasks[4].get("emit_drift_event") == "success"
          and steps[5][1].get("run_id", "").startswith("asset_triggered__") and "evaluate_gate" in results[5]
          and results[6]["check_drift"]["dataset_drift"] and tasks[6].get("emit_drift_event") == "skipped")
    return 0 if ok and canary_story.canary_outcome_ok(looks) else 1


def drift_line(check: dict, emit_state: str | None) -> str:
    """One line on a drift check: status, what drifted, and what became of the event."""
    features = check.get("drifted_features") or []
    label = {"drift": "DRIFT", "no_drift": "no drift", "insufficient_data": "insufficient data"}[check["status"]]
    text = f"{label} ({len(features)} features drifted, share {check['share']:.0%}"
    text += f": {', '.join(features)})" if features else ")"
    if check.get("performance_drift"):
        text += ", performance drift"
    if emit_state == "success":
        return text + f"; event emitted on mlops://{MODEL}/drift"
    if check.get("dataset_drift") or check.get("performance_drift"):
        return text + "; event held back (cooldown / already emitted)"
    return text + "; no event"


def validation_failure(environment: DemoEnvironment, run: dict) -> str:
    """What the failed validation found, read back from the report stored in its MLflow run."""
    from mlflow import MlflowClient

    from airflow_mlops.core.validation import failure_summary
    from airflow_mlops.hooks.mlflow import MLflowHook

    client = MlflowClient(tracking_uri=environment.mlflow_uri)
    experiment = client.get_experiment_by_name(f"mlops/{MODEL}")
    runs = client.search_runs([experiment.experiment_id], max_results=1, filter_string=(
        f"tags.`mlops.task_id` = 'validate' and tags.`mlops.run_id` = '{run['run_id']}'"))
    if not runs:
        return "no report found"
    report = MLflowHook("mlflow_default").load_json(runs[0].info.run_id, "validation/report.json")
    return f"{failure_summary(report)} (report: validation/report.html in MLflow run {runs[0].info.run_id})"


def print_summary(environment: DemoEnvironment, steps: list[tuple[str, dict]], out=print) -> None:
    print = out  # noqa: A001  (the story's console, not this process's redirected stdout)
    print("\n=== airflow-mlops demo summary ===")
    for title, run in steps:
        if not run:
            print(f"- {title}: no run was started")
            continue
        results = run["results"]
        line = f"- {title}: run {run['state']}"
        if run["run_id"].startswith("asset_triggered__"):
            line += f" ({run['run_id'].split('__')[0]}, started by the drift event)"
        if "check_drift" in results:
            line += "; " + drift_line(results["check_drift"], run["tasks"].get("emit_drift_event"))
        gate = results.get("evaluate_gate") or {}
        if gate:
            champion = gate.get("champion_metric")
            vs = f" vs champion {champion:.4f}" if champion is not None else " (no champion yet)"
            line += (f"; gate {gate['verdict']} ({gate['metric']} {gate['challenger_metric']:.4f}{vs}), "
                     f"decision {gate['decision']}")
        refit = results.get("refit") or {}
        if refit.get("refit"):
            line += "; refit on train + holdout (the drifted window)"
        if "register" in results:
            line += f"; registered version {results['register']['version']}"
        if "promote" in results:
            line += f"; champion is now version {results['promote']['champion']}"
        if run["tasks"].get("start_canary") == "success":
            canary = results["start_canary"]
            line += f"; canary of version {canary['challenger']} against champion {canary['champion']} started"
        if run["tasks"].get("validate") == "failed":
            line += f"; validation FAILED, bad data caught before training: {validation_failure(environment, run)}"
        print(line)
    registry = registry_summary(environment)
    print(f"- registry {MODEL}: versions {registry['versions']}, aliases {registry['aliases']}")


def print_serve_hint(environment: DemoEnvironment, out=print) -> None:
    print = out  # noqa: A001
    home = environment.home
    print("\nOpen the Airflow and MLflow UIs on this data (Ctrl-C stops them):")
    print(f"  {Path(sys.executable).with_name('airflow-mlops')} demo --serve-only --home {home}")
