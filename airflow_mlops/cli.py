"""The ``airflow-mlops`` command: demo, validate-config, new-model.

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airflow-mlops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the embedded end-to-end demo")
    demo.add_argument("--home", default=".demo", help="folder for the demo's Airflow, MLflow and data")
    demo.set_defaults(func=_cmd_demo)
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
