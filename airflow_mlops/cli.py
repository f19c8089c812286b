"""The ``airflow-mlops`` command: demo, drift, validate-config, new-model.

Environment for Airflow must be set before Airflow is imported, so nothing heavy is imported at the top.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path



def _cmd_demo(args) -> int:
    from airflow_mlops.demo import run_demo

    return run_demo(Path(args.home))


def _cmd_validate(args) -> int:
    from airflow_mlops.core.config import ConfigError, load_config

    status = 0
    for path in args.configs:
        try:
            config = load_config(path)
        except ConfigError as error:
            print(error, file=sys.stderr)
            status = 2
            continue
        stub = Path(path).resolve().parent.parent / f"mlops_{config.model}.py"
        note = "" if stub.exists() else f" (no DAG file {stub.name} next to configs/: run new-model)"
        print(f"{path}: ok, model {config.model}{note}")
    return status


def _cmd_new_model(args) -> int:
    dags = Path(args.dags_folder)
    config_path = dags / "configs" / f"{args.name}.yaml"
    stub_path = dags / f"mlops_{args.name}.py"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    if not stub_path.exists():
        from airflow_mlops.demo import bundled_dags_dir

        # Every model's DAG file is the same thin file; its name picks the YAML.
        shutil.copy(bundled_dags_dir() / "mlops_credit_risk.py", stub_path)
    if not config_path.exists():
        config_path.write_text(
            f"model: {args.name}\ndata:\n  conn_id: mlops_data\n  table: {args.name}\n"
            "  timestamp_column: created_at\n  entity_id: id\n  target: label\n  features: [x1, x2]\n")
    print(f"wrote {stub_path} and {config_path}; edit the YAML, then `airflow-mlops validate-config {config_path}`")
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


def _read_sql(query: str, conn_uri: str, what: str):
    import pandas as pd

    scheme = conn_uri.split("://", 1)[0].split("+", 1)[0]
    try:
        if scheme == "sqlite":
            import sqlite3

            with sqlite3.connect(conn_uri.split(":///", 1)[-1]) as connection:
                return pd.read_sql_query(query, connection)
        if scheme in ("postgresql", "postgres"):
            import psycopg

            with psycopg.connect("postgresql://" + conn_uri.split("://", 1)[1]) as connection:
                cursor = connection.execute(query)
                return pd.DataFrame(cursor.fetchall(), columns=[c.name for c in cursor.description])
    except Exception as error:
        raise InputError(f"--{what}: query failed on {scheme}: {' '.join(str(error).split())}") from None
    raise InputError(f"--conn-uri: unsupported database {scheme!r}; use sqlite:///path or postgresql://...")


def _drift_settings(args, config):
    from dataclasses import replace

    from airflow_mlops.core.drift import DriftSettings

    settings = DriftSettings.from_config(config.drift) if config else DriftSettings()
    overrides = {name: getattr(args, name) for name in ("p_value", "correction", "drift_share", "min_effect_size",
                                                        "min_sample_size", "backend")
                 if getattr(args, name) is not None}
    return replace(settings, **overrides)


def _cmd_drift(args) -> int:
    import json

    from airflow_mlops.core.config import ConfigError, load_config
    from airflow_mlops.core.drift import DriftInputError, detect_drift

    try:
        config = load_config(args.config) if args.config else None
        reference = _read_source(args.reference, args.conn_uri, "reference")
        current = _read_source(args.current, args.conn_uri, "current")
        features = config.data.features if config else args.features
        categorical = config.data.categorical if config else (args.categorical or [])
        report = detect_drift(reference, current, features=features, categorical=categorical,
                              settings=_drift_settings(args, config))
    except (InputError, ConfigError, DriftInputError, ImportError, ValueError) as error:
        print(f"airflow-mlops drift: error: {error}", file=sys.stderr)
        return 2
    payload = report.to_dict()
    if args.format == "html":
        from airflow_mlops.core.reports import drift_report_html

        text = drift_report_html(payload, config.model if config else "command line")
    else:
        text = json.dumps(payload, indent=2, default=str)
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text)
    print(f"drift: {report.status}; " + "; ".join(report.reasons), file=sys.stderr)
    return 1 if report.dataset_drift else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the embedded end-to-end demo")
    demo.add_argument("--home", default=".demo", help="folder for the demo's Airflow, MLflow and data")
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
    drift.add_argument("--p-value", type=float)
    drift.add_argument("--correction", choices=["bh", "bonferroni", "none"])
    drift.add_argument("--drift-share", type=float)
    drift.add_argument("--min-effect-size", type=float)
    drift.add_argument("--min-sample-size", type=int)
    drift.set_defaults(func=_cmd_drift)
    validate = commands.add_parser("validate-config", help="validate model YAML files")
    validate.add_argument("configs", nargs="+")
    validate.set_defaults(func=_cmd_validate)
    new = commands.add_parser("new-model", help="scaffold a model: a YAML config and its thin DAG file")
    new.add_argument("name")
    new.add_argument("--dags-folder", default="dags")
    new.set_defaults(func=_cmd_new_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
