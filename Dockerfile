# One Dockerfile, five images; build one with --target:
#   docker build --target subscriptions   -t restate-examples-subscriptions .
#   docker build --target building-blocks -t restate-examples-building-blocks .
#   docker build --target user-object     -t restate-examples-user-object .
#   docker build --target signup-workflow -t restate-examples-signup-workflow .
#   docker build --target operator        -t restate-examples-operator .
# skaffold builds the shared `service` stage once instead and runs every example from it (the
# chart gives each its command).
# The images run as uid 10001 with a read-only root filesystem; Python is PID 1 (exec-form
# CMD) and gets SIGTERM directly: the services drain for SHUTDOWN_GRACE_SECONDS, kopf stops
# its handlers. No process is forked that Python does not reap itself, so there is no init.

# Pinned base (patch release + Debian release). Pin the digest too where a registry is
# reachable: `docker buildx imagetools inspect python:3.11.14-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- dependencies (cached layers)
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Only pyproject.toml: this layer and the next are rebuilt when the pins change, not the code.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies']))" > requirements.txt \
 && pip install --requirement requirements.txt

FROM deps AS deps-operator
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(p['project']['optional-dependencies']['operator']))" > requirements-operator.txt \
 && pip install --requirement requirements-operator.txt

# ---------------------------------------------------------------- the project's code
FROM deps AS build-services
COPY services ./services
COPY operator ./operator
RUN pip install --no-deps . \
 && python -c "import examples_runtime, subscriptions.service, building_blocks.service, user_object.service, signup_workflow.service"

FROM deps-operator AS build-operator
COPY services ./services
COPY operator ./operator
RUN pip install --no-deps . \
 && python -c "import kopf, kubernetes, cryptography, restate_operator, restate_operator.keygen"

# ---------------------------------------------------------------- runtime base
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin app
WORKDIR /app

FROM runtime AS service
COPY --from=build-services /opt/venv /opt/venv
USER 10001:10001
ENV HOST=0.0.0.0 PORT=9080
EXPOSE 9080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9080/healthz', timeout=2).status != 200)"]

# ---------------------------------------------------------------- the five targets
FROM service AS subscriptions
CMD ["python", "-m", "examples_runtime", "subscriptions.service:app"]

FROM service AS building-blocks
CMD ["python", "-m", "examples_runtime", "building_blocks.service:app"]

FROM service AS user-object
CMD ["python", "-m", "examples_runtime", "user_object.service:app"]

FROM service AS signup-workflow
CMD ["python", "-m", "examples_runtime", "signup_workflow.service:app"]

FROM runtime AS operator
COPY --from=build-operator /opt/venv /opt/venv
USER 10001:10001
# 8080: liveness (/healthz), 9090: Prometheus metrics.
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "restate_operator"]
