"""The database of this process: as a URL another process (a worker) can use, and a throwaway
one for a benchmark."""

from typing import Any

import django
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases


def database_url() -> str:
    """``DATABASE_URL`` for the default database as configured now (the test database once
    the test runner or a benchmark has created it)."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def throwaway_database(name: str, *, migrate: bool = True) -> Any:
    """Set Django up on a fresh database of its own, for a benchmark: built by the migrations,
    as in production (they add what the models do not say, e.g. the triggers keeping the fleet
    counters, which every write pays for), or with ``migrate=False`` straight from the models;
    ``drop_throwaway_database`` removes it again."""
    if not migrate:
        settings.MIGRATION_MODULES = {app.split(".")[-1]: None for app in settings.INSTALLED_APPS}
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database["TEST"] = {"NAME": str(settings.VAR_DIR / f"{name}.sqlite3")}
    else:
        database["TEST"] = {"NAME": f"{name}_{database['NAME']}"}
    django.setup()
    return setup_databases(verbosity=0, interactive=False, keepdb=False)


def drop_throwaway_database(old: Any) -> None:
    connection.close()
    teardown_databases(old, verbosity=0)
