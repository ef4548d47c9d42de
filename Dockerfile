# syntax=docker/dockerfile:1
# The portal's one image: web, worker, beat and the migrate step all run it, each through its
# entry point in deploy/ (compose.yaml). Production requirements only; runs as a non-root user.

ARG PYTHON_VERSION=3.13

# 1. Build wheels for every runtime requirement (compilers stay in this stage).
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY requirements/production.txt requirements/production.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements/production.txt

# 2. The runtime: the wheels, the code, collected static files, no build tools, no test tools.
FROM python:${PYTHON_VERSION}-slim-bookworm AS run
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    GUNICORN_BIND=0.0.0.0:8000 \
    GUNICORN_WORKER_TMP_DIR=/dev/shm
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system portal && useradd --system --gid portal --home-dir /app --no-create-home portal
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels /wheels/* && rm -rf /wheels
# Only for debugging variants (compose.yaml's flower service); empty in the production image.
ARG EXTRA_PACKAGES=""
RUN if [ -n "$EXTRA_PACKAGES" ]; then pip install --no-cache-dir $EXTRA_PACKAGES; fi
WORKDIR /app
COPY --chown=portal:portal manage.py ./
COPY --chown=portal:portal config config
COPY --chown=portal:portal portal portal
COPY --chown=portal:portal connectors connectors
COPY --chown=portal:portal templates templates
COPY --chown=portal:portal static static
COPY --chown=portal:portal deploy deploy
# Static files are collected (hashed and compressed for whitenoise) at build time, with throwaway
# values for the settings production requires: none of them is read by collectstatic.
RUN DJANGO_SECRET_KEY=build DJANGO_ALLOWED_HOSTS=build DATABASE_URL=postgres://build/build \
    PORTAL_CREDENTIAL_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXJlYWwta2V5MDA= \
    python manage.py collectstatic --no-input -v0 \
    && chown -R portal:portal /app/staticfiles
USER portal
EXPOSE 8000
CMD ["/app/deploy/web.sh"]
