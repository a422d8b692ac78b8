# Production image. One image, three roles (see docker-compose.yml): gunicorn serving
# config.wsgi (the default command), the Celery worker and Celery beat. All configuration comes
# from the environment (config/settings.py); nothing secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app

RUN python -m venv /opt/venv
WORKDIR /app

# The dependencies exactly as pyproject.toml pins them, in a layer of their own so that a code
# change does not reinstall them. The code itself runs from /app (settings find templates and
# static files beside it), so the project is not installed a second time into site-packages.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Static files are collected at build time and served by WhiteNoise. Production settings refuse
# to load without a strong SECRET_KEY and a DATABASE_URL, so this one step gets throwaway values
# (collectstatic never connects to the database); the real ones arrive at run time.
RUN DEBUG=false \
    DATABASE_URL=postgres://collectstatic@localhost/unused \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --no-input --verbosity 0

RUN useradd --system --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin app
USER app

EXPOSE 8000
# Workers: WEB_CONCURRENCY (gunicorn reads it); more options: GUNICORN_CMD_ARGS.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--worker-tmp-dir", "/dev/shm"]
