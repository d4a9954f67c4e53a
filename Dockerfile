# syntax=docker/dockerfile:1
# smsdest: slim, non-root. Build: docker build -t smsdest .

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 smsdest \
 && useradd --system --uid 10001 --gid smsdest --home-dir /app --shell /usr/sbin/nologin smsdest
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY templates ./templates
COPY destinations.example.yaml ./
RUN mkdir -p /app/data && chown smsdest:smsdest /app/data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SMS_HOST=0.0.0.0 \
    SMS_PORT=8080 \
    SMS_DATA_DIR=/app/data \
    SMS_TEMPLATES_DIR=/app/templates
USER smsdest
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["smsdest", "serve"]
