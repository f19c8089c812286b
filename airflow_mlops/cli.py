"""The ``airflow-mlops`` command: init, demo, drift, validate-config, new-model, rollback.

Environment for Airflow must be set before Airflow is imported, so nothing heavy is imported at the top.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path



def _cmd_demo(args) -> int:
    from airflow_mlops.demo.serve import serve
    from airflow_mlops.demo.story import run_demo

    if not args.serve_only:
        status = run_demo(Path(args.home))
        if status or not args.serve:
            return status
    return serve(Path(args.home), port=args.port, mlflow_port=args.mlflow_port, run_for=args.serve_for)


def _cmd_validate(args) -> int:
    from airflow_mlops.core.config import ConfigError, check_deeply, load_config

    status = 0
    for path in args.configs:
        try:
            config = load_config(path)
            problems = check_deeply(config)  # imports the estimator: too heavy for DAG parsing
            if problems:
                raise ConfigError(str(path), problems)
        except ConfigError as error:
            print(error, file=sys.stderr)
            status = 2
            continue
        stub = Path(path).resolve().parent.parent / f"mlops_{config.model}.py"
        note = "" if stub.exists() else f" (no DAG file {stub.name} next to configs/: run new-model)"
        print(f"{path}: ok, model {config.model}{note}")
    return status


def _cmd_new_model(args) -> int:
    from airflow_mlops.core.config import MODEL_NAME

    if not MODEL_NAME.match(args.name):
        print(f"airflow-mlops new-model: error: {args.name!r} is not a model name: lower case letters, digits and "
              "'_', starting with a letter, at most 63 characters", file=sys.stderr)
        return 2
    dags = Path(args.dags_folder) if args.dags_folder else _default_dags_folder()
    config_path = dags / "configs" / f"{args.name}.yaml"
    stub_path = dags / f"mlops_{args.name}.py"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    if not stub_path.exists():
        from airflow_mlops.bundled import bundled_dags_dir

        # Every model's DAG file is the same thin file; its name picks the YAML.
        shutil.copy(bundled_dags_dir() / "mlops_credit_risk.py", stub_path)
    if not config_path.exists():
        config_path.write_text(
            f"model: {args.name}\ndata:\n  conn_id: mlops_data\n  table: {args.name}\n"
            "  timestamp_column: created_at\n  entity_id: id\n  target: label\n  features: [x1, x2]\n")
    print(f"wrote {stub_path} and {config_path}; edit the YAML, then `airflow-mlops validate-config {config_path}`")
    return 0


DAGS_FOLDER_HELP = "default: $AIRFLOW__CORE__DAGS_FOLDER, else $AIRFLOW_HOME/dags (~/airflow/dags), as Airflow's own"


def _default_dags_folder() -> Path:
    import os

    if os.environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "dags"


def _cmd_init(args) -> int:
    """Put the bundled example model into an existing Airflow's DAGs folder (never overwriting a file)."""
    from airflow_mlops.bundled import bundled_dags_dir

    dags = Path(args.dags_folder) if args.dags_folder else _default_dags_folder()
    source = bundled_dags_dir()
    wanted = [(source / "mlops_credit_risk.py", dags / "mlops_credit_risk.py"),
              (source / "configs" / "credit_risk.yaml", dags / "configs" / "credit_risk.yaml")]
    try:
        (dags / "configs").mkdir(parents=True, exist_ok=True)
        for origin, target in wanted:
            if target.exists() and not args.force:
                print(f"kept {target} (exists; --force overwrites)")
                continue
            shutil.copy(origin, target)
            print(f"wrote {target}")
    except OSError as error:  # a DAGs folder that is a file, not writable...: one line, status 2
        print(f"airflow-mlops init: error: cannot write into {dags}: {error.strerror or error}", file=sys.stderr)
        return 2
    print("Next: define the connections the config names (mlops_data: sqlite or postgres; mlflow_default: type "
          "mlflow), `airflow-mlops validate-config` the YAML, then switch mlops_ct__credit_risk on in the UI "
          "(every bundled DAG starts paused). More models: `airflow-mlops new-model <name>`.")
    return 0


class InputError(ValueError):
    """Bad command-line input: printed as one line, exit status 2."""


def _read_source(value: str, conn_uri: str | None, what: str):
    """A CSV or Parquet file, or (with ``--conn-uri``) the result of a SQL query on that database."""
    import pandas as pd

    path = Path(value)
    if path.suffix.lower() in (".csv", ".parquet", ".pq") or not conn_uri:
        if not path.is_file():
            raise InputError(f"--{what}: no such file {value!r}" + ("" if conn_uri else
                             " (pass --conn-uri to read it as SQL)"))
        try:
            return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except Exception as error:
            raise InputError(f"--{what}: cannot read {value!r}: {error}") from None
    return _read_sql(value, conn_uri, what)


def redact_uri(text: str, uri: str) -> str:
    """``text`` without the password of ``uri``, given as ``user:password@`` or ``?password=`` (even when the URI
    is malformed and cannot be parsed). A user name alone is not a secret and stays readable."""
    import re

    rest = uri.split("://", 1)[1] if "://" in uri else uri
    secrets = []
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    if ":" in userinfo:
        secrets.append(userinfo.split(":", 1)[1])
    secrets += re.findall(r"(?:^|[?&;\s])password=([^&;\s]+)", rest, flags=re.IGNORECASE)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def _read_sql(query: str, conn_uri: str, what: str):
    """Run the query read-only: SQLite opened in mode=ro with query_only (a typo in the path is an error, never a
    new empty database), PostgreSQL in read-only transactions, one statement, always rolled back."""
    from airflow_mlops.core.errors import DataSourceError
    from airflow_mlops.hooks.database import Database

    try:
        return Database.from_uri(conn_uri, read_only=True).read_query(query)
    except (DataSourceError, ValueError) as error:
        raise InputError(redact_uri(f"--{what}: {error}", conn_uri)) from None


def _drift_settings(args, config):
    from dataclasses import replace

    from airflow_mlops.core.drift import DriftSettings

    settings = DriftSettings.from_config(config.drift) if config else DriftSettings()
    overrides = {name: getattr(args, name) for name in ("p_value", "correction", "drift_share", "min_effect_size",
                                                        "min_sample_size", "backend")
                 if getattr(args, name) is not None}
    return replace(settings, **overrides)


def _numeric_columns_of(frame, categorical) -> list[str]:
    """Columns to compare as numbers: numeric dtypes, and object columns holding only numbers (PostgreSQL
    ``numeric`` arrives as Decimal objects, which would otherwise be compared as categories)."""
    import numbers

    import pandas as pd

    found = []
    for column in frame.columns:
        if column in categorical:
            continue
        series = frame[column]
        if pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_numeric_dtype(series):
            found.append(column)
        elif series.dtype == object:
            present = series.dropna()
            if len(present) and present.map(lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool)).all():
                found.append(column)
    return found


def _cmd_drift(args) -> int:
    from airflow_mlops.core.coercion import numeric_columns
    from airflow_mlops.core.config import ConfigError, load_config
    from airflow_mlops.core.drift import DriftInputError, detect_drift

    try:
        config = load_config(args.config) if args.config else None
        reference = _read_source(args.reference, args.conn_uri, "reference")
        current = _read_source(args.current, args.conn_uri, "current")
        features = config.data.features if config else args.features
        categorical = config.data.categorical if config else (args.categorical or [])
        # As the drift task does: numbers held as objects (Decimal) are compared as numbers. Without a config, a
        # column counts as numeric only when it is on both sides (a text column in the window stays an error).
        numeric = (config.data.numeric if config else
                   sorted(set(_numeric_columns_of(reference, categorical)) & set(_numeric_columns_of(current,
                                                                                                  categorical))))
        reference, _ = numeric_columns(reference, numeric)
        current, unreadable = numeric_columns(current, numeric)
        for column, count in unreadable.items():
            print(f"airflow-mlops drift: {column}: {count} value(s) that are not numbers read as missing",
                  file=sys.stderr)
        report = detect_drift(reference, current, features=features, categorical=categorical,
                              settings=_drift_settings(args, config))
    except Exception as error:  # bad input of any kind: one line and status 2, never 1 (1 means drift)
        message = str(error) if isinstance(error, (InputError, ConfigError, DriftInputError, ImportError,
                                                   ValueError)) else f"{type(error).__name__}: {error}"
        message = redact_uri(message, args.conn_uri) if args.conn_uri else message
        print(f"airflow-mlops drift: error: {' '.join(message.split())[:2000]}", file=sys.stderr)
        return 2
    payload = report.to_dict()
    if args.format == "html":
        from airflow_mlops.core.reports import drift_report_html

        text = drift_report_html(payload, config.model if config else "command line")
    else:
        from airflow_mlops.core.jsonsafe import strict_json

        text = strict_json(payload, indent=2)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as error:
            print(f"airflow-mlops drift: error: --output: cannot write {args.output!r}: {error.strerror}",
                  file=sys.stderr)
            return 2
    else:
        print(text)
    print(f"drift: {report.status}; " + "; ".join(report.reasons), file=sys.stderr)
    return 1 if report.dataset_drift else 0


def _in_range(kind, low, high, *, low_open: bool = False, high_open: bool = False):
    """An argparse type: a number of ``kind`` within the bounds (an error otherwise, exit status 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if value != value or value in (float("inf"), float("-inf")) or too_low or too_high:
            top = high if high is not None else "inf"
            bounds = f"{'(' if low_open else '['}{low}, {top}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"{text} is outside {bounds}")
        return value
    return parse


def _config_path(args) -> Path:

    if args.config:
        return Path(args.config)
    dags = Path(args.dags_folder) if args.dags_folder else _default_dags_folder()
    for suffix in (".yaml", ".yml"):
        if (dags / "configs" / f"{args.model}{suffix}").exists():
            return dags / "configs" / f"{args.model}{suffix}"
    return dags / "configs" / f"{args.model}.yaml"


def _cmd_rollback(args) -> int:
    """End a running canary, or else restore the previous champion, through the same compare-and-set as every
    promotion."""
    import getpass

    from airflow_mlops.core.errors import MLOpsError
    from airflow_mlops.deployment import Deployments
    from airflow_mlops.hooks.mlflow import MLflowHook

    try:
        from airflow_mlops.core.config import load_config

        config = load_config(_config_path(args))
        if config.model != args.model:
            raise MLOpsError(f"{_config_path(args)} configures model {config.model!r}, not {args.model!r}")
        deployments = Deployments.of(config, MLflowHook(config.mlflow.conn_id))
        before = deployments.state.get(config.model)
        transition, alias_error = deployments.rollback(actor=f"cli:{getpass.getuser()}", reason=args.reason)
    except Exception as error:  # one line, status 2
        print(f"airflow-mlops rollback: error: {' '.join(str(error).split())[:1000]}", file=sys.stderr)
        return 2
    row = transition.deployment
    if before is not None and before.canary_active:
        print(f"{config.model}: the canary of version {before.challenger} is ended; version {row.champion} serves "
              f"alone (phase {row.phase}, row version {row.row_version})")
    else:
        print(f"{config.model}: champion is version {row.champion} again (was {row.previous_champion}); "
              f"phase {row.phase}, row version {row.row_version}")
    if alias_error:
        print(f"airflow-mlops rollback: warning: done in the deployment state, but the MLflow aliases were not moved "
              f"({alias_error}); they follow at the next task of this model. Do not run the rollback again: it "
              "would roll forward.", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="write the bundled DAG file and example config into a DAGs folder")
    init.add_argument("--dags-folder", help=DAGS_FOLDER_HELP)
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.set_defaults(func=_cmd_init)
    demo = commands.add_parser("demo", help="run the embedded end-to-end demo")
    demo.add_argument("--home", default=".demo", help="folder for the demo's Airflow, MLflow and data")
    demo.add_argument("--serve", action="store_true", help="then open the Airflow and MLflow UIs on its data")
    demo.add_argument("--serve-only", action="store_true", help="open the UIs on an earlier demo without rerunning it")
    demo.add_argument("--port", type=int, default=8080, help="Airflow api-server port (default 8080)")
    demo.add_argument("--mlflow-port", type=int, default=5000, help="MLflow UI port (default 5000)")
    demo.add_argument("--serve-for", type=float, default=None, help=argparse.SUPPRESS)  # tests: stop after N s
    demo.set_defaults(func=_cmd_demo)
    drift = commands.add_parser(
        "drift", help="compare two data sets; exit 1 on dataset drift, 0 without, 2 on bad input",
        description="Compare CURRENT with REFERENCE feature by feature. REF/CUR are CSV or Parquet files, or SQL "
                    "queries when --conn-uri is given. Prints the report; exits 1 when dataset drift is found, 0 "
                    "otherwise, 2 on bad input.")
    drift.add_argument("--reference", required=True, metavar="REF")
    drift.add_argument("--current", required=True, metavar="CUR")
    drift.add_argument("--conn-uri", help="database for SQL REF/CUR: sqlite:///file.db or postgresql://...")
    drift.add_argument("--config", help="model YAML: its features, categorical columns and drift settings")
    drift.add_argument("--features", nargs="+", help="columns to compare (default: all; --config sets them)")
    drift.add_argument("--categorical", nargs="+", help="columns to treat as categorical")
    drift.add_argument("--format", choices=["json", "html"], default="json")
    drift.add_argument("--output", help="write the report to this file instead of stdout")
    drift.add_argument("--backend", choices=["builtin", "alibi"])
    drift.add_argument("--p-value", type=_in_range(float, 0, 1, low_open=True, high_open=True), help="in (0, 1)")
    drift.add_argument("--correction", choices=["bh", "bonferroni", "none"])
    drift.add_argument("--drift-share", type=_in_range(float, 0, 1, low_open=True), help="in (0, 1]")
    drift.add_argument("--min-effect-size", type=_in_range(float, 0, None), help=">= 0")
    drift.add_argument("--min-sample-size", type=_in_range(int, 1, None), help=">= 1")
    drift.set_defaults(func=_cmd_drift)
    validate = commands.add_parser("validate-config", help="validate model YAML files")
    validate.add_argument("configs", nargs="+")
    validate.set_defaults(func=_cmd_validate)
    rollback = commands.add_parser(
        "rollback", help="end a running canary, or else restore the model's previous champion",
        description="Restore the previous champion through the deployment state's compare-and-set, then move the "
                    "MLflow aliases. Uses the Airflow connections the model config names.")
    rollback.add_argument("model")
    rollback.add_argument("--config", help="the model YAML (default: <dags-folder>/configs/<model>.yaml)")
    rollback.add_argument("--dags-folder", help=DAGS_FOLDER_HELP)
    rollback.add_argument("--reason", default="rolled back by hand (airflow-mlops rollback)")
    rollback.set_defaults(func=_cmd_rollback)
    new = commands.add_parser("new-model", help="scaffold a model: a YAML config and its thin DAG file")
    new.add_argument("name")
    new.add_argument("--dags-folder", help=DAGS_FOLDER_HELP)
    new.set_defaults(func=_cmd_new_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
