"""The embedded demo (``make demo`` / ``airflow-mlops demo``) and the in-process harness the tests share.

Nothing under ``airflow_mlops.demo`` is imported by operators, hooks or DAG files.
"""
