# A slim image of Fluister. It serves the web process (the Procfile's `web`) by default; run a
# delivery worker from the same image with `python -m workers` (the Procfile's `worker`).
# Settings come from the environment (see the README's Configuration table). Built with
# BuildKit (Docker's default builder since 23.0), for the `RUN --mount` below.

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
# The catalogs are compiled (.po -> .mo) into the wheel with the Babel that requirements.txt pins.
RUN pip install --no-cache-dir --disable-pip-version-check setuptools==84.2.1 "$(grep -i '^Babel==' requirements.txt)" \
 && pybabel compile --quiet -d translations \
 && pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir /wheels .
# Every dependency as requirements.lock names it, each file checked against the lock's hashes.
RUN pip download --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
      -r requirements.lock --dest /deps

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
# The versions requirements.txt pins, as constraints (which take no extras), for what
# pyproject.toml declares: the embedded extra (fakeredis) stays out, a container runs on Redis.
# Installed only from the files downloaded and hash-checked above (--no-index), mounted for
# this step alone so that they add no layer to the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/deps,target=/deps \
    sed -e 's/\[[^]]*\]//' /tmp/requirements.txt > /tmp/constraints.txt \
 && pip install --no-index --find-links /deps --constraint /tmp/constraints.txt /wheels/*.whl \
 && rm -f /tmp/requirements.txt /tmp/constraints.txt
RUN useradd --create-home --uid 10001 fluister
USER fluister
WORKDIR /home/fluister
ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "python -m engine.catalogs && exec gunicorn -c python:config.gunicorn --preload --bind ${HOST:-127.0.0.1}:${PORT:-5000} --no-control-socket --logger-class engine.gunicorn_logs.GunicornLogger --access-logfile - \"engine.startup:wsgi_app()\""]
