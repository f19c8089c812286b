"""Reusable operators. Import each from its module, e.g. ``from airflow_mlops.operators.training import
TrainModelOperator``; this package imports nothing so DAG files stay light."""
