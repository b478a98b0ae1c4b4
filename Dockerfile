# A slim image of Fluister. It serves the web process (the Procfile's `web`) by default; run a
# delivery worker from the same image with `python -m workers` (the Procfile's `worker`).
# Settings come from the environment (see the README's Configuration table).

FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir --disable-pip-version-check setuptools==84.2.1 \
 && pip wheel --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
COPY requirements.txt /tmp/requirements.txt
# The versions requirements.txt pins, as constraints (which take no extras), for what
# pyproject.toml declares: the embedded extra (fakeredis) stays out, a container runs on Redis.
RUN sed -e 's/\[[^]]*\]//' /tmp/requirements.txt > /tmp/constraints.txt \
 && pip install --constraint /tmp/constraints.txt /wheels/*.whl \
 && rm -rf /wheels /tmp/requirements.txt /tmp/constraints.txt
RUN useradd --create-home --uid 10001 fluister
USER fluister
WORKDIR /home/fluister
ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "exec gunicorn -c python:config.gunicorn --preload --bind ${HOST:-127.0.0.1}:${PORT:-5000} --no-control-socket \"engine.startup:wsgi_app()\""]
