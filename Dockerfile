# The Airflow image of the docker-compose stack: apache/airflow with this provider installed from the repository.
# Build context: the repository root (see .dockerignore). docs/deployment.md has the details.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-mlops/
COPY --chown=airflow:root airflow_mlops /opt/airflow-mlops/airflow_mlops
COPY --chown=airflow:root dags /opt/airflow-mlops/dags
# apache-airflow is pinned to the image's own version so the resolver never moves Airflow (or its providers)
# while it installs the provider's dependencies; postgres-fast adds the ADBC reader for the data in PostgreSQL.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/airflow-mlops[postgres-fast]"

# The MLflow service runs this image too; its artifact volume is initialised from this directory (owner airflow).
USER root
RUN mkdir -p /mlartifacts && chown airflow:root /mlartifacts
USER airflow
