"""Bundled MLOps DAGs of one model. The model is named by this file: mlops_<model>.py reads configs/<model>.yaml.

To add a model, copy this file as mlops_<your_model>.py and write configs/<your_model>.yaml
(or run `airflow-mlops new-model <your_model>`). A broken YAML shows as an import error of this file only.
"""

from airflow_mlops.dag_factory import dags_for_file

globals().update(dags_for_file(__file__))
