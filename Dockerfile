# patreon-role-sync: the bot in a small image. Secrets come from the environment at run time (docker-compose.yml
# reads them from .env); nothing secret is baked in. The database and its key file live in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# A user of its own, no login shell, owning only the data folder.
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin bot \
    && mkdir /data \
    && chown bot:bot /data \
    && chmod 0700 /data

COPY bot/ bot/
COPY cogs/ cogs/
COPY fakes/ fakes/

ENV DATABASE_PATH=/data/patreon-roles.sqlite3 \
    WEB_HOST=0.0.0.0 \
    PORT=8080

VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080

# Liveness only (/healthz is cheap); /readyz is for monitoring and says why it isn't ready.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
