#!/usr/bin/env bash
# The production build on this machine, without Docker: what the Dockerfile builds (only
# requirements.txt, collectstatic with the Dockerfile's environment), then the Procfile's web
# (gunicorn), worker, importer and beat with DJANGO_DEBUG=0 on PostgreSQL and Redis.
#
#   scripts/production_local.sh serve       # `make production`: runs until Ctrl-C
#   scripts/production_local.sh manage createsuperuser   # manage.py, with the same settings
#   scripts/production_local.sh acceptance  # `make acceptance` (CI): a fresh database, the
#       simulator, the fleet manager's journey in Chromium (tests/acceptance), then the logs are
#       checked for 5xx answers, tracebacks and errors; everything is stopped in any case.
#
# serve and manage use DATABASE_URL, CELERY_BROKER_URL, CACHE_URL (default: the local fleetportal database,
# Redis 0 and 1), DJANGO_SECRET_KEY and FIELD_ENCRYPTION_KEYS (generated once under the work
# directory when unset), SIMULATOR_ENABLED (default 0) and PORT (8000).
# acceptance uses ACCEPTANCE_DATABASE_URL (default .../fleetportal_acceptance, DROPPED AND
# CREATED AGAIN on every run), ACCEPTANCE_BROKER_URL and ACCEPTANCE_CACHE_URL (Redis 12 and 13,
# EMPTIED on every run) and a free port.
# Everything else the processes read comes from the environment as in production (.env.example).
# The work directory (PRODUCTION_LOCAL_DIR, default var/production-local) holds the production
# virtualenv, FLEETPORTAL_VAR_DIR and the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

mode="${1:-}"
case "$mode" in
  serve | acceptance | manage) shift ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

work="${PRODUCTION_LOCAL_DIR:-$root/var/production-local}"
venv="$work/venv"
logs="$work/logs"
var_dir="$work/var"
python="${PYTHON:-python3}"
mkdir -p "$work"
say() { printf '%s\n' "$*"; }

# Started processes, each the leader of its own process group; all stopped on any exit. TERM
# goes to the leader only (gunicorn's master, Celery's main process): it stops its children
# itself once their work is done. A TERM to the whole group would kill a Celery pool child in
# the middle of a task (WorkerLostError in the log). What is left after the grace is killed.
declare -A pids=()
stop_all() {
  local name pid waited
  for name in "${!pids[@]}"; do
    kill -TERM "${pids[$name]}" 2>/dev/null || true
  done
  for name in "${!pids[@]}"; do
    pid="${pids[$name]}"
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 150 ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "pids[$name]"
  done
}
finish() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  if [ "$status" != 0 ] && [ "$status" != 130 ]; then  # 130: Ctrl-C
    for log in "$logs"/*.log; do
      [ -f "$log" ] || continue
      printf '\n--- last lines of %s\n' "$log"
      tail -n 25 "$log"
    done
  fi
  say "Logs: $logs"
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --- Build: the Dockerfile's steps ----------------------------------------------------------------
# `pip install -r requirements.txt` into a virtualenv of its own, so a package only the tests
# install (requirements-dev.txt) cannot hide a missing production dependency.
requirements_hash=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$requirements_hash" ]; then
  say "Installing requirements.txt into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r requirements.txt
  echo "$requirements_hash" > "$venv/.requirements"
fi

if [ "$mode" = acceptance ]; then
  rm -rf "$logs" "$var_dir"
fi
mkdir -p "$logs" "$var_dir"

# The Dockerfile's ENV and its collectstatic RUN line, in an otherwise empty environment.
dockerfile_env=(PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 FLEETPORTAL_VAR_DIR="$var_dir")
collectstatic_env=(
  DJANGO_SECRET_KEY=collectstatic-only
  FIELD_ENCRYPTION_KEYS=ZmFrZS1rZXktZm9yLWNvbGxlY3RzdGF0aWMtb25seSE=
)
if [ "$mode" != manage ]; then
  say "Collecting static files as the Dockerfile does"
  rm -rf staticfiles
  env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$work" "${dockerfile_env[@]}" "${collectstatic_env[@]}" \
    python manage.py collectstatic --noinput >"$logs/collectstatic.log" 2>&1
  tail -n1 "$logs/collectstatic.log"
fi

# --- Settings -------------------------------------------------------------------------------------
free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
new_fernet_key() {
  "$venv/bin/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'
}
new_secret() { "$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))'; }

if [ "$mode" = acceptance ]; then
  database_url="${ACCEPTANCE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fleetportal_acceptance}"
  broker_url="${ACCEPTANCE_BROKER_URL:-redis://127.0.0.1:6379/12}"
  cache_url="${ACCEPTANCE_CACHE_URL:-redis://127.0.0.1:6379/13}"
  port="$(free_port)"
  secret_key="$(new_secret)"
  encryption_keys="$(new_fernet_key)"
  simulator=1
  demo_password="$(new_secret)"
else
  database_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fleetportal}"
  broker_url="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}"
  cache_url="${CACHE_URL:-redis://127.0.0.1:6379/1}"
  port="${PORT:-8000}"
  # Kept between runs: a new FIELD_ENCRYPTION_KEYS could not read the stored secrets.
  secrets_file="$work/secrets.env"
  if [ ! -f "$secrets_file" ]; then
    (umask 077; printf 'DJANGO_SECRET_KEY=%s\nFIELD_ENCRYPTION_KEYS=%s\n' "$(new_secret)" "$(new_fernet_key)" >"$secrets_file")
  fi
  secret_key="${DJANGO_SECRET_KEY:-$(sed -n 's/^DJANGO_SECRET_KEY=//p' "$secrets_file")}"
  encryption_keys="${FIELD_ENCRYPTION_KEYS:-$(sed -n 's/^FIELD_ENCRYPTION_KEYS=//p' "$secrets_file")}"
  simulator="${SIMULATOR_ENABLED:-0}"
fi
base_url="http://127.0.0.1:$port"
site_url="${SITE_URL:-$base_url}"
if [ "$mode" = acceptance ]; then site_url="$base_url"; fi

prod_env=(
  "${dockerfile_env[@]}"
  DJANGO_DEBUG=0
  DJANGO_SECRET_KEY="$secret_key"
  FIELD_ENCRYPTION_KEYS="$encryption_keys"
  DATABASE_URL="$database_url"
  CELERY_BROKER_URL="$broker_url"
  CACHE_URL="$cache_url"
  SITE_URL="$site_url"
  SIMULATOR_ENABLED="$simulator"
  DJANGO_ALLOWED_HOSTS="${DJANGO_ALLOWED_HOSTS:-127.0.0.1,localhost}"
  # Plain HTTP on this machine; behind a TLS proxy leave it on (the default).
  DJANGO_SECURE_SSL_REDIRECT="${DJANGO_SECURE_SSL_REDIRECT:-0}"
  PORT="$port"
  WEB_BIND=127.0.0.1
  # gunicorn's control socket defaults to one path per user; one per work directory instead,
  # so two of these runs on one machine do not take each other's.
  GUNICORN_CMD_ARGS="${GUNICORN_CMD_ARGS:---control-socket $work/gunicorn.ctl}"
  PATH="$venv/bin:$PATH"
)
# The production shape needs PostgreSQL and Redis. The database is created when missing; the
# acceptance run starts from a fresh database and empty Redis DBs of its own.
env "${prod_env[@]}" FRESH="$([ "$mode" = acceptance ] && echo 1 || echo 0)" python - <<'EOF'
import os
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

fresh = os.environ["FRESH"] == "1"
url = urlsplit(os.environ["DATABASE_URL"])
if url.scheme not in {"postgres", "postgresql"}:
    raise SystemExit(f"The production build needs a PostgreSQL DATABASE_URL, not {url.scheme}://")
for key in ("CELERY_BROKER_URL", "CACHE_URL"):
    if not os.environ[key].startswith(("redis://", "rediss://")):
        raise SystemExit(f"The production build needs Redis for {key}")
name = url.path.lstrip("/")
with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as connection:
    if fresh:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        connection.execute(drop.format(sql.Identifier(name)))
    exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if not exists:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"Created the database {name}")
if fresh:
    for key in ("CELERY_BROKER_URL", "CACHE_URL"):
        redis.Redis.from_url(os.environ[key]).flushdb()
    print(f"Emptied {os.environ['CELERY_BROKER_URL']} and {os.environ['CACHE_URL']}")
EOF
if [ "$mode" = manage ]; then
  trap - EXIT INT TERM
  exec env "${prod_env[@]}" python manage.py "$@"
fi

# --- Run ------------------------------------------------------------------------------------------
procfile_command() {
  local command
  command="$(sed -n "s/^$1: //p" Procfile)"
  [ -n "$command" ] || { say "No '$1' process in the Procfile"; exit 1; }
  printf '%s' "$command"
}
start() {
  local name="$1" command
  command="$(procfile_command "$name")"
  # A process group of its own, so stopping it stops its children (gunicorn's and Celery's).
  env "${prod_env[@]}" setsid bash -c "exec $command" >"$logs/$name.log" 2>&1 &
  pids[$name]=$!
}
alive() {
  local name
  for name in "${!pids[@]}"; do
    kill -0 "${pids[$name]}" 2>/dev/null || { say "$name stopped; see $logs/$name.log"; return 1; }
  done
}
wait_until() {
  local what="$1" seconds="$2"
  shift 2
  for _ in $(seq 1 $((seconds * 2))); do
    "$@" && return 0
    alive || return 1
    sleep 0.5
  done
  say "$what did not happen within ${seconds}s"
  return 1
}
web_healthy() { "$venv/bin/python" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$base_url/healthz', timeout=5).status != 200)" 2>/dev/null; }

say "Migrating $(printf '%s' "$database_url" | sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#')"
env "${prod_env[@]}" python manage.py migrate --noinput >"$logs/migrate.log" 2>&1
if [ "$mode" = acceptance ]; then
  # The organization, its owner and a simulator credential, as an operator would create them.
  env "${prod_env[@]}" DEMO_PASSWORD="$demo_password" python manage.py demo >"$logs/demo.log" 2>&1
fi

for name in web worker importer beat; do start "$name"; done
say "Logs: $logs"
wait_until "gunicorn answering $base_url/healthz" 60 web_healthy
wait_until "the worker being ready" 60 grep -q "ready\." "$logs/worker.log"
wait_until "the importer being ready" 60 grep -q "ready\." "$logs/importer.log"
wait_until "beat starting" 60 grep -q "beat: Starting" "$logs/beat.log"
say "Production build up on $base_url (web ${pids[web]}, worker ${pids[worker]}, importer ${pids[importer]}, beat ${pids[beat]}); SIMULATOR_ENABLED=$simulator"

if [ "$mode" = serve ]; then
  say "Ctrl-C stops all of them. An account to log in with: $0 manage createsuperuser"
  wait -n "${pids[@]}" || true
  say "A process stopped; stopping the others."
  exit 1
fi

# --- Acceptance -----------------------------------------------------------------------------------
report="$logs/acceptance-junit.xml"
journey_status=0
ACCEPTANCE_BASE_URL="$base_url" ACCEPTANCE_USERNAME=demo ACCEPTANCE_PASSWORD="$demo_password" \
ACCEPTANCE_STATIC_MANIFEST="$root/staticfiles/staticfiles.json" ACCEPTANCE_ARTIFACTS_DIR="$logs/journey" \
  "$root/.venv/bin/pytest" tests/acceptance -p no:cacheprovider -q -ra --junitxml="$report" \
  || journey_status=$?
stop_all
logs_status=0
"$root/.venv/bin/python" -m tests.acceptance.report logs "$logs" || logs_status=$?
"$root/.venv/bin/python" -m tests.acceptance.report junit "$report" || journey_status=1
if [ "$journey_status" != 0 ] || [ "$logs_status" != 0 ]; then
  say "Acceptance run FAILED."
  exit 1
fi
say "Acceptance run passed: the production build served the journey without a server error."
