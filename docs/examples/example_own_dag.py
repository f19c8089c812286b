"""Using the airflow-mlops operators in a DAG of your own (the bundled DAG is built the same way).

Place this file in your DAGs folder next to configs/credit_risk.yaml.
"""

from pathlib import Path

from airflow.sdk import DAG

from airflow_mlops.operators.extract import ExtractTrainingDataOperator
from airflow_mlops.operators.gate import EvaluationGateOperator
from airflow_mlops.operators.pipeline import FinishPipelineRunOperator
from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
from airflow_mlops.operators.training import RefitModelOperator, TrainModelOperator
from airflow_mlops.operators.validation import DataValidationOperator

CONFIG = str(Path(__file__).parent / "configs" / "credit_risk.yaml")

# [START howto_mlops_own_dag]
with DAG(dag_id="example_mlops_own_dag", schedule=None, tags=["example", "mlops"]) as dag:
    extract = ExtractTrainingDataOperator(task_id="extract", config=CONFIG)
    validate = DataValidationOperator(task_id="validate", config=CONFIG, data=extract.output)
    train = TrainModelOperator(task_id="train", config=CONFIG, data=validate.output)
    gate = EvaluationGateOperator(task_id="evaluate_gate", config=CONFIG, training=train.output)
    # After a PASS, refit on train + holdout (training.refit; a no-op otherwise).
    refit = RefitModelOperator(task_id="refit", config=CONFIG, gate=gate.output)
    register = RegisterModelOperator(task_id="register", config=CONFIG, gate=refit.output)
    # Promotes only on the gate's decision "promote" (or an Approve answer passed as approval=...).
    promote = PromoteModelOperator(task_id="promote", config=CONFIG, gate=gate.output,
                                   registration=register.output)
    # Closes the DAG run's parent MLflow run whatever happened (a teardown never decides the run's state).
    promote >> FinishPipelineRunOperator(task_id="finish_pipeline_run", config=CONFIG).as_teardown()
# [END howto_mlops_own_dag]
