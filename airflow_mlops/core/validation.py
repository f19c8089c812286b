"""Data validation with Great Expectations 1.x on a pandas DataFrame, and the policy that follows.

Expectations come from the model config as ``{expectation_name: kwargs}``. The result is a plain dict
(JSON-safe) with one entry per expectation, plus the row indices that failed row-level expectations, so the
``quarantine`` policy can set those rows aside and pass the rest on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.config import ValidationConfig
from airflow_mlops.core.errors import DataValidationFailed, ValidationSetupError
from airflow_mlops.core.jsonsafe import json_safe


__all__ = ["DataValidationFailed", "ValidationSetupError", "validate_frame", "failure_summary"]


@dataclass
class ValidationOutcome:
    report: dict[str, Any]
    bad_index: list            # index labels of rows that failed row-level expectations
    quarantinable: bool        # every failed expectation was row-level


def _class_name(expectation: str) -> str:
    return "".join(part.capitalize() for part in expectation.split("_"))


def build_suite(config: ValidationConfig, name: str):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for index, item in enumerate(config.expectations):
        ((expectation, kwargs),) = item.items()
        cls = getattr(gx.expectations, _class_name(expectation), None)
        if cls is None:
            raise ValidationSetupError(f"validation.expectations.{index}: unknown expectation {expectation!r}")
        try:
            suite.add_expectation(cls(**(kwargs or {})))
        except Exception as error:  # GX raises pydantic errors of its own version
            reason = " ".join(str(error).split())
            raise ValidationSetupError(f"validation.expectations.{index} ({expectation}): {reason}") from None
    return suite


def ephemeral_context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_frame(frame, config: ValidationConfig, *, name: str) -> ValidationOutcome:
    """Run the configured expectations on ``frame`` (a pandas DataFrame) and summarise the result."""
    context = ephemeral_context()  # GX 1.x builds expectations only inside an active context
    suite = build_suite(config, name)
    report: dict[str, Any] = {"suite": name, "policy": config.policy, "rows": int(len(frame)),
                              "success": True, "results": []}
    if not config.expectations:
        return ValidationOutcome(report, [], True)
    asset = context.data_sources.add_pandas(f"{name}_source").add_dataframe_asset("window")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    bad_index: set = set()
    quarantinable = True
    for item in result.results:
        details = item.result or {}
        kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
        entry = {"expectation": item.expectation_config.type, "kwargs": json_safe(kwargs),
                 "success": bool(item.success)}
        for key in ("observed_value", "element_count", "unexpected_count", "unexpected_percent",
                    "missing_count", "partial_unexpected_list"):
            if key in details:
                entry[key] = json_safe(details[key])
        if item.exception_info and item.exception_info.get("raised_exception"):
            entry["error"] = str(item.exception_info.get("exception_message"))
        report["results"].append(entry)
        if not item.success:
            report["success"] = False
            if "unexpected_index_list" in details and "error" not in entry:
                bad_index.update(details["unexpected_index_list"])
            else:
                quarantinable = False
    return ValidationOutcome(report, sorted(bad_index, key=str), quarantinable)


def failure_summary(report: dict[str, Any]) -> str:
    failed = [r for r in report["results"] if not r["success"]]
    parts = []
    for r in failed:
        column = r["kwargs"].get("column")
        detail = r.get("error") or (f"{r['unexpected_count']} unexpected ({r.get('unexpected_percent', 0):.1f}%)"
                                    if "unexpected_count" in r else f"observed {r.get('observed_value')}")
        parts.append(f"{r['expectation']}{f'({column})' if column else ''}: {detail}")
    return "; ".join(parts)
