"""Pure logic of airflow-mlops: configuration, statistics, fingerprints, reports.

Nothing in this package imports Airflow, so it can be unit-tested and reused outside a scheduler.
Heavy libraries (pandas, scikit-learn, ...) are imported inside the functions that need them.
"""
