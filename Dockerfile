FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FLEETPORTAL_VAR_DIR=/app/var
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time and served by whitenoise.
RUN DJANGO_SECRET_KEY=collectstatic-only FIELD_ENCRYPTION_KEYS=ZmFrZS1rZXktZm9yLWNvbGxlY3RzdGF0aWMtb25seSE= \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 fleetportal && mkdir -p /app/var && chown -R fleetportal /app/var
USER fleetportal

EXPOSE 8000
CMD ["gunicorn", "fleetportal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
