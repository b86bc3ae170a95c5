# syntax=docker/dockerfile:1
# Two stages: `build` installs the locked dependencies and collects static files;
# the runtime image carries only the result and runs as an unprivileged user.
ARG PYTHON_VERSION=3.13

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir "uv==0.13.8"
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY . .
# Settings load in production mode to collect the hashed, compressed static files; these
# placeholder values exist only for this build step and are not in the final environment
# (nothing is signed here, so the operator's C2PA keys are not needed yet).
RUN DJANGO_ENV=production SECRET_KEY=collectstatic-only ALLOWED_HOSTS=build EMAIL_HOST=build \
    C2PA_SIGNING=0 \
    KIE_API_KEY=build API_KEY_HASH_KEY=build DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost AWS_STORAGE_BUCKET_NAME=build PUBLIC_BASE_URL=https://build.invalid \
    VAR_DIR=/tmp/var \
    /app/.venv/bin/python manage.py collectstatic --noinput

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system --gid 10001 unmark \
    && useradd --system --uid 10001 --gid unmark --home-dir /app --shell /usr/sbin/nologin unmark
WORKDIR /app
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /app/var && chown unmark:unmark /app/var
ENV PATH=/app/.venv/bin:$PATH \
    DJANGO_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000
USER unmark
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"]
# The web process. Workers run the same image with: python manage.py worker
# Migrations run once per release with: python manage.py migrate
CMD ["sh", "-c", "exec gunicorn config.wsgi --bind 0.0.0.0:${PORT} --workers ${WEB_CONCURRENCY:-3} --threads ${WEB_THREADS:-4} --no-control-socket --access-logfile - --forwarded-allow-ips='*'"]
