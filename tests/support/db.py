"""The database the current process uses, as a URL another process (a worker) can use."""

from django.conf import settings


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
