# syntax=docker/dockerfile:1
# The deploylab image: the gateway by default; the same image runs the exporter (`deploylab export`)
# and Locust (`locust -f loadtests/locustfile.py`) in docker-compose.yml and deploy/k8s.
#
#   docker build -t deploylab:0.1.0 .
#
# Dependencies install exactly as pinned in constraints.txt (torch with its CUDA wheels, so the
# exporter and benchmarks also run on a GPU host).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY services ./services
COPY loadtests ./loadtests
COPY benchmarks ./benchmarks
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt .

FROM ${PYTHON_IMAGE}
# Non-root: a fixed uid so volume ownership (model repository) is predictable across hosts.
RUN groupadd --system --gid 10001 deploylab \
 && useradd --system --uid 10001 --gid deploylab --home-dir /app --no-create-home deploylab \
 && mkdir -p /app /models \
 && chown deploylab:deploylab /app /models
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=deploylab:deploylab config ./config
# Locust imports loadtests.* from /app (PYTHONPATH), so a mounted ./loadtests overrides the copy.
COPY --chown=deploylab:deploylab loadtests ./loadtests
COPY --chown=deploylab:deploylab deploy/docker/healthcheck.py ./healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    DEPLOYLAB_MODEL_REPOSITORY=/models \
    DEPLOYLAB_STATE_DIR=/tmp/deploylab \
    DEPLOYLAB_GATEWAY_HOST=0.0.0.0 \
    DEPLOYLAB_GATEWAY_PORT=8080 \
    DEPLOYLAB_GATEWAY_MODEL_REPOSITORY=/models \
    DEPLOYLAB_GATEWAY_ROUTING_FILE=/app/config/routing.yaml
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/app/healthcheck.py", "/healthz"]
CMD ["python", "-m", "deploylab.services.gateway.main"]
