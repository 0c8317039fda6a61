"""The production shape on private services, for the fault suite.

A PostgreSQL cluster of its own (``initdb`` + ``pg_ctl`` on a free port) and a Redis server of
its own (no persistence), both removed afterwards, so the shared services are never touched; then
the Procfile's web (gunicorn), worker, importer and beat with ``DJANGO_DEBUG=0`` and the
simulator on, as ``scripts/production_local.sh`` runs them. Every process is the leader of its own
process group, so a scenario can kill a Celery parent, only its pool child, or stop it warmly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
# The Procfile's processes the suite does not run: the telemetry stream (MQTT) is not under test.
NOT_STARTED = {"mqtt", "publisher", "stream"}

# The suite's short intervals: the reconciler wakes due work every few seconds, HM's read timeout
# is short enough to be exceeded on purpose, batches are small so a kill lands mid-work. The
# periodic sync is put off for the whole run: only the reconciler may repair what a fault broke.
SUITE_SETTINGS = {
    "RECONCILE_INTERVAL_SECONDS": "2",
    "CLEARANCE_SYNC_INTERVAL_SECONDS": "86400",
    "HM_READ_TIMEOUT": "2",
    "HM_CONNECT_TIMEOUT": "2",
    "HM_CLEARANCE_BATCH_SIZE": "20",
    "HM_RETRY_BACKOFF_SECONDS": "1",
    "HM_RETRY_BACKOFF_MAX_SECONDS": "4",
    "DURABLE_RETRY_BASE_SECONDS": "1",
    "DURABLE_RETRY_MAX_SECONDS": "4",
    "IMPORT_BATCH_SIZE": "5",
    "SIMULATOR_APPROVAL_DELAY_SECONDS": "3",
    "SIMULATOR_REMOVAL_DELAY_SECONDS": "3",
    "TELEMETRY_PULL_INTERVAL_SECONDS": "3600",
    "ALERT_EVALUATION_INTERVAL_SECONDS": "3600",
    "WORKER_CONCURRENCY": "2",
    "WEB_WORKERS": "2",
    "CELERY_TASK_TIME_LIMIT": "120",
}


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(what: str, check: Callable[[], bool], timeout: float, step: float = 0.25) -> float:
    """Seconds until ``check()`` is true; StackError after ``timeout``."""
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if check():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise StackError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(step)


def postgres_bin() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    found = shutil.which("initdb")
    if candidates:
        return candidates[-1].parent
    if found:
        return Path(found).parent
    raise StackError("initdb not found: install PostgreSQL (apt-get install postgresql)")


class PostgresCluster:
    """A throwaway cluster; as root it runs as the ``postgres`` user (initdb refuses root)."""

    def __init__(self, base: Path):
        self.bin = postgres_bin()
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, check=check, cwd="/"
        )

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False
        )

    def url(self, database: str = "fleetportal") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')


class RedisServer:
    """A Redis without persistence: stopping it loses every message, as a crash would."""

    def __init__(self, base: Path):
        self.dir = base / "redis"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        log = (self.dir / "redis.log").open("a")
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for("redis-server listening", lambda: port_open(self.port), 20)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


def procfile(root: Path = ROOT) -> dict[str, str]:
    commands = {}
    for line in (root / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#") and name.strip().isidentifier():
            commands[name.strip()] = command.strip()
    return commands


class Process:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[int]:
        """Direct children (a Celery worker's pool processes, gunicorn's workers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid:
                    found.append(int(entry.name))
        return sorted(found)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


class Stack:
    """Private PostgreSQL + Redis, and the production processes on them."""

    def __init__(self, base: Path | None = None):
        self.base = base or Path(tempfile.mkdtemp(prefix="fleetportal-faults-"))
        os.chmod(self.base, 0o755)
        self.logs = self.base / "logs"
        self.logs.mkdir(exist_ok=True)
        # The processes run a copy of the code as it was at the start, so editing or merging in
        # the working tree during a run cannot change what a restarted process runs.
        self.code = self.base / "code"
        shutil.copytree(
            ROOT,
            self.code,
            symlinks=True,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "var", "staticfiles", "node_modules", "__pycache__", ".*_cache"
            ),
        )
        self.postgres = PostgresCluster(self.base)
        self.redis = RedisServer(self.base)
        self.web_port = free_port()
        self.processes: dict[str, Process] = {}
        self.starts: dict[str, int] = {}
        self.env = self._environment()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        var_dir = self.base / "var"
        var_dir.mkdir(exist_ok=True)
        keep = {k: v for k, v in os.environ.items() if k in {"HOME", "LANG", "LC_ALL", "TZ"}}
        return {
            **keep,
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": "fleetportal.settings",
            "FLEETPORTAL_VAR_DIR": str(var_dir),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": self.postgres.url(),
            "CELERY_BROKER_URL": self.redis.url(0),
            "CACHE_URL": self.redis.url(1),
            "SITE_URL": self.base_url,
            "SIMULATOR_ENABLED": "1",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "PORT": str(self.web_port),
            "WEB_BIND": "127.0.0.1",
            "GUNICORN_CMD_ARGS": f"--control-socket {self.base / 'gunicorn.ctl'}",
            **SUITE_SETTINGS,
        }

    # --- services -------------------------------------------------------------------------------

    def up(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database("fleetportal")
        self.redis.start()
        self.manage("migrate", "--noinput", timeout=600)
        names = [name for name in procfile(self.code) if name not in NOT_STARTED]
        for name in names:
            self.start(name)
        self.wait_ready(*names)

    def down(self) -> None:
        for name in list(self.processes):
            self.stop(name, grace=10)
        self.redis.kill()
        self.postgres.stop("immediate")

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def manage(self, *args: str, timeout: float = 300, **env: str) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=self.code,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def driver(self, *args: str, timeout: float = 300) -> str:
        """``tests/faults/driver.py`` (a fleet manager's actions) in a process of its own."""
        result = subprocess.run(
            [str(VENV_BIN / "python"), "-m", "tests.faults.driver", *args],
            cwd=self.code,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise StackError(f"driver {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def sql(self, query: str, params: tuple | list = ()) -> list[tuple]:
        with psycopg.connect(self.postgres.url(), connect_timeout=5) as connection:
            return connection.execute(query, params).fetchall()

    # --- processes ------------------------------------------------------------------------------

    def start(self, name: str) -> Process:
        command = procfile(self.code)[name]
        self.starts[name] = self.starts.get(name, 0) + 1
        log = self.logs / f"{name}.{self.starts[name]}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.code,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = Process(name, popen, log)
        return self.processes[name]

    def wait_ready(self, *names: str, timeout: float = 120) -> None:
        commands = procfile(self.code)
        for name in names:
            process = self.processes[name]
            command = commands[name]
            if "gunicorn" in command or "runserver" in command:
                ready = self.web_healthy
            elif " beat" in command:
                ready = lambda process=process: "beat: Starting" in process.text()  # noqa: E731
            else:  # a Celery worker
                ready = lambda process=process: "ready." in process.text()  # noqa: E731

            def check(name: str = name, process: Process = process, ready=ready) -> bool:
                if not process.alive():
                    raise StackError(f"{name} stopped:\n{process.text()[-3000:]}")
                return ready()

            try:
                wait_for(f"{name} ready", check, timeout)
            except StackError as exc:
                if "stopped" in str(exc):
                    raise
                raise StackError(f"{exc}:\n{process.text()[-3000:]}") from exc

    def web_healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=5) as answer:
            return answer.status == 200

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.processes[name].pid, sig)

    def kill_group(self, name: str) -> None:
        """kill -9 of a process and everything it started (its process group)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=20)

    def kill_children(self, name: str) -> list[int]:
        """kill -9 of a Celery worker's pool processes only (what the OOM killer does)."""
        children = self.processes[name].children()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return children

    def stop(self, name: str, grace: float = 15) -> float:
        """SIGTERM to the leader (a warm shutdown); kill -9 of the group after ``grace``.
        Returns the seconds it took to stop on its own (``grace`` if it had to be killed)."""
        process = self.processes.pop(name)
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.popen.wait(timeout=grace)
            took = time.monotonic() - started
        except subprocess.TimeoutExpired:
            took = grace
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=10)
        return took

    def restart(self, name: str) -> None:
        if name in self.processes and self.processes[name].alive():
            self.kill_group(name)
        self.start(name)
        self.wait_ready(name)
