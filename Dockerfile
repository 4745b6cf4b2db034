# The borderflow worker (and the rest of the CLI) as an image, for docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY events ./events
COPY streams ./streams
COPY cli ./cli
RUN pip install .

RUN useradd --system --create-home --home-dir /var/lib/borderflow borderflow
USER borderflow
ENV BORDERFLOW_DATA_DIR=/var/lib/borderflow/state \
    BORDERFLOW_WEB_HOST=0.0.0.0 \
    BORDERFLOW_WEB_PORT=6066
VOLUME /var/lib/borderflow
EXPOSE 6066

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=4).status == 200 else 1)"

ENTRYPOINT ["borderflow"]
CMD ["worker"]
