# syntax=docker/dockerfile:1
# Hookpost's image: every process (api, worker, scheduler, migrate) runs from it.
#
#   docker build -t hookpost:0.1.0 .
#   docker run --rm -e HOOKPOST_ADMIN_TOKEN=... -e HOOKPOST_DATABASE_URL=... hookpost:0.1.0 api
#
# Dependencies install exactly as uv.lock pins them, every hash checked (`uv sync --locked`
# refuses a lock that disagrees with pyproject.toml); only the runtime ones (--no-dev). The
# final stage holds Python, that virtual environment and nothing else, and runs as an
# unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
ENV UV_PROJECT_ENVIRONMENT=/opt/hookpost
# The dependencies first, in a layer of their own: rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --extra otel --no-install-project --python /usr/local/bin/python3
# Then Hookpost itself, with nothing else.
COPY README.md ./
COPY src ./src
RUN uv sync --locked --no-dev --extra otel --no-editable --python /usr/local/bin/python3

FROM ${PYTHON_IMAGE} AS runtime
# tls/ is made here, owned by hookpost, because a fresh named volume mounted on a folder of the
# image takes that folder's owner: compose.yaml's certificate service writes into it.
RUN groupadd --system --gid 10001 hookpost \
    && useradd --system --uid 10001 --gid hookpost --home-dir /var/lib/hookpost --create-home \
       --shell /usr/sbin/nologin hookpost \
    && install -d -o hookpost -g hookpost -m 0755 /var/lib/hookpost/tls
COPY --from=build /opt/hookpost /opt/hookpost
ENV PATH=/opt/hookpost/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOOKPOST_DATA_DIR=/var/lib/hookpost \
    HOOKPOST_BIND=0.0.0.0:8000 \
    HOOKPOST_LOG_FORMAT=json
WORKDIR /var/lib/hookpost
USER 10001:10001
EXPOSE 8000
# Exec form: the hookpost process is PID 1 and gets the runtime's SIGTERM itself (each
# command execs Gunicorn or Celery in place, so they do).
ENTRYPOINT ["hookpost"]
CMD ["api"]
