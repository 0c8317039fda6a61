"""Vehicles per clearance status and organization, kept by the database itself.

The fleet counters used to count every vehicle of an organization joined to its clearance on
each request (a scan growing with the whole installation). Triggers on vehicles and clearances
now keep ``clearance_fleetstatuscount`` up to date in the same transaction as every change,
whoever makes it: a form, a bulk ``UPDATE``, a set-based import, a cascade. Status "" counts the
vehicles without a clearance.

PostgreSQL: statement-level triggers with transition tables append one row per
(organization, status) a statement changed, holding the difference; concurrent transactions
never update the same row, so they neither wait on nor lose each other's changes. The counts
are the sums. Every 64th changing statement folds the rows of differences into one per status
(``clearance_fleet_counts_fold``, skipping rows another transaction is folding, never waiting),
and ``clearance.selectors.fleet_status_counts`` folds an organization's rows when it finds many.

SQLite (the embedded defaults, one writer at a time): row-level triggers keep one row per
(organization, status) and update it in place.

PostgreSQL also gets an index of the VINs that carries the vehicle ids: a fleet page fetches its
50 ids first, and deep in a large fleet it then reads them from the index alone (an index-only
scan) instead of visiting every vehicle before them.

A vehicle deleted before its clearance (possible with deferred foreign keys) is counted out with
its clearance's status; the clearance's own deletion then finds no vehicle and changes nothing.
"""

from django.db import migrations, models

COUNTS = "clearance_fleetstatuscount"

# --- PostgreSQL --------------------------------------------------------------------------------

POSTGRES_INSTALL = f"""
CREATE SEQUENCE clearance_fleet_counts_statements;

-- Fold rows of differences into one row per (organization, status): one organization's, or
-- (NULL) those of every organization with more than one row for a status. Rows another
-- transaction is folding are skipped, never waited for; the rows deleted are the rows summed.
CREATE FUNCTION clearance_fleet_counts_fold(org bigint) RETURNS void LANGUAGE sql AS $$
  WITH folded AS (
    DELETE FROM {COUNTS} WHERE id IN (
      SELECT id FROM {COUNTS}
      WHERE organization_id = org
         OR (org IS NULL AND (organization_id, status) IN (
               SELECT organization_id, status FROM {COUNTS}
               GROUP BY organization_id, status HAVING count(*) > 1 OR sum(vehicles) = 0))
      FOR UPDATE SKIP LOCKED)
    RETURNING organization_id, status, vehicles)
  INSERT INTO {COUNTS} (organization_id, status, vehicles)
  SELECT organization_id, status, sum(vehicles) FROM folded
  GROUP BY organization_id, status HAVING sum(vehicles) <> 0
$$;

CREATE FUNCTION clearance_fleet_counts_clearance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT v.organization_id, d.status, sum(d.n)
    FROM (
      SELECT vehicle_id, status, 1 AS n FROM new_rows
      UNION ALL SELECT vehicle_id, '', -1 FROM new_rows
    ) d JOIN vehicles_vehicle v ON v.id = d.vehicle_id
    GROUP BY v.organization_id, d.status HAVING sum(d.n) <> 0;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT v.organization_id, d.status, sum(d.n)
    FROM (
      SELECT vehicle_id, status, -1 AS n FROM old_rows
      UNION ALL SELECT vehicle_id, '', 1 FROM old_rows
    ) d JOIN vehicles_vehicle v ON v.id = d.vehicle_id
    GROUP BY v.organization_id, d.status HAVING sum(d.n) <> 0;
  ELSE
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT v.organization_id, d.status, sum(d.n)
    FROM (
      SELECT c.vehicle_id, c.status, c.n
      FROM old_rows o JOIN new_rows n ON n.id = o.id,
      LATERAL (VALUES (o.vehicle_id, o.status, -1), (o.vehicle_id, '', 1),
                      (n.vehicle_id, n.status, 1), (n.vehicle_id, '', -1))
        AS c (vehicle_id, status, n)
      WHERE o.status IS DISTINCT FROM n.status OR o.vehicle_id <> n.vehicle_id
    ) d JOIN vehicles_vehicle v ON v.id = d.vehicle_id
    GROUP BY v.organization_id, d.status HAVING sum(d.n) <> 0;
  END IF;
  -- Every 64th changing statement folds, so the rows stay few even where nobody reads them.
  IF mod(nextval('clearance_fleet_counts_statements'), 64) = 0 THEN
    PERFORM clearance_fleet_counts_fold(NULL);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION clearance_fleet_counts_vehicle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT organization_id, '', count(*) FROM new_rows GROUP BY organization_id;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT o.organization_id, coalesce(c.status, ''), -count(*)
    FROM old_rows o LEFT JOIN clearance_clearance c ON c.vehicle_id = o.id
    GROUP BY o.organization_id, coalesce(c.status, '');
  ELSE
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
    SELECT d.organization_id, coalesce(c.status, ''), sum(d.n)
    FROM (
      SELECT o.id, o.organization_id, -1 AS n
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE o.organization_id <> n.organization_id
      UNION ALL
      SELECT n.id, n.organization_id, 1
      FROM old_rows o JOIN new_rows n ON n.id = o.id
      WHERE o.organization_id <> n.organization_id
    ) d LEFT JOIN clearance_clearance c ON c.vehicle_id = d.id
    GROUP BY d.organization_id, coalesce(c.status, '') HAVING sum(d.n) <> 0;
  END IF;
  -- Every 64th changing statement folds, so the rows stay few even where nobody reads them.
  IF mod(nextval('clearance_fleet_counts_statements'), 64) = 0 THEN
    PERFORM clearance_fleet_counts_fold(NULL);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER fleet_counts_insert AFTER INSERT ON clearance_clearance
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_clearance();
CREATE TRIGGER fleet_counts_update AFTER UPDATE ON clearance_clearance
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_clearance();
CREATE TRIGGER fleet_counts_delete AFTER DELETE ON clearance_clearance
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_clearance();
CREATE TRIGGER fleet_counts_insert AFTER INSERT ON vehicles_vehicle
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_vehicle();
CREATE TRIGGER fleet_counts_update AFTER UPDATE ON vehicles_vehicle
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_vehicle();
CREATE TRIGGER fleet_counts_delete AFTER DELETE ON vehicles_vehicle
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION clearance_fleet_counts_vehicle();
"""

POSTGRES_PAGE_INDEX = """
CREATE INDEX vehicle_fleet_page_by_vin ON vehicles_vehicle (organization_id, vin) INCLUDE (id);
"""

POSTGRES_UNINSTALL = """
DROP INDEX IF EXISTS vehicle_fleet_page_by_vin;
DROP TRIGGER IF EXISTS fleet_counts_insert ON clearance_clearance;
DROP TRIGGER IF EXISTS fleet_counts_update ON clearance_clearance;
DROP TRIGGER IF EXISTS fleet_counts_delete ON clearance_clearance;
DROP TRIGGER IF EXISTS fleet_counts_insert ON vehicles_vehicle;
DROP TRIGGER IF EXISTS fleet_counts_update ON vehicles_vehicle;
DROP TRIGGER IF EXISTS fleet_counts_delete ON vehicles_vehicle;
DROP FUNCTION IF EXISTS clearance_fleet_counts_clearance();
DROP FUNCTION IF EXISTS clearance_fleet_counts_vehicle();
DROP FUNCTION IF EXISTS clearance_fleet_counts_fold(bigint);
DROP SEQUENCE IF EXISTS clearance_fleet_counts_statements;
"""

# --- SQLite ------------------------------------------------------------------------------------


def _bump(organization: str, status: str, delta: int) -> str:
    """Add `delta` to the (organization, status) row, creating it first (SQL expressions)."""
    return f"""
    INSERT INTO {COUNTS} (organization_id, status, vehicles)
      SELECT o, s, 0 FROM (SELECT {organization} AS o, {status} AS s)
      WHERE o IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {COUNTS} WHERE organization_id = o AND status = s);
    UPDATE {COUNTS} SET vehicles = vehicles + ({delta})
      WHERE organization_id = {organization} AND status = {status};"""


def _owner(vehicle_id: str) -> str:
    return f"(SELECT organization_id FROM vehicles_vehicle WHERE id = {vehicle_id})"


def _status_of(vehicle_id: str) -> str:
    return f"coalesce((SELECT status FROM clearance_clearance WHERE vehicle_id = {vehicle_id}), '')"


SQLITE_TRIGGERS = {
    "fleet_counts_clearance_insert": (
        "AFTER INSERT ON clearance_clearance",
        _bump(_owner("NEW.vehicle_id"), "NEW.status", 1)
        + _bump(_owner("NEW.vehicle_id"), "''", -1),
    ),
    "fleet_counts_clearance_delete": (
        "AFTER DELETE ON clearance_clearance",
        _bump(_owner("OLD.vehicle_id"), "OLD.status", -1)
        + _bump(_owner("OLD.vehicle_id"), "''", 1),
    ),
    "fleet_counts_clearance_update": (
        "AFTER UPDATE OF status, vehicle_id ON clearance_clearance "
        "WHEN OLD.status IS NOT NEW.status OR OLD.vehicle_id <> NEW.vehicle_id",
        _bump(_owner("OLD.vehicle_id"), "OLD.status", -1)
        + _bump(_owner("OLD.vehicle_id"), "''", 1)
        + _bump(_owner("NEW.vehicle_id"), "NEW.status", 1)
        + _bump(_owner("NEW.vehicle_id"), "''", -1),
    ),
    "fleet_counts_vehicle_insert": (
        "AFTER INSERT ON vehicles_vehicle",
        _bump("NEW.organization_id", "''", 1),
    ),
    "fleet_counts_vehicle_delete": (
        "AFTER DELETE ON vehicles_vehicle",
        _bump("OLD.organization_id", _status_of("OLD.id"), -1),
    ),
    "fleet_counts_vehicle_update": (
        "AFTER UPDATE OF organization_id ON vehicles_vehicle "
        "WHEN OLD.organization_id <> NEW.organization_id",
        _bump("OLD.organization_id", _status_of("OLD.id"), -1)
        + _bump("NEW.organization_id", _status_of("NEW.id"), 1),
    ),
}

# The counts of the data already there (the triggers keep them from now on).
FILL = f"""
INSERT INTO {COUNTS} (organization_id, status, vehicles)
SELECT v.organization_id, coalesce(c.status, ''), count(*)
FROM vehicles_vehicle v LEFT JOIN clearance_clearance c ON c.vehicle_id = v.id
GROUP BY v.organization_id, coalesce(c.status, '')
"""


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_INSTALL)
        schema_editor.execute(POSTGRES_PAGE_INDEX)
    elif vendor == "sqlite":
        for name, (when, body) in SQLITE_TRIGGERS.items():
            schema_editor.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    else:  # pragma: no cover - FleetPortal runs on PostgreSQL or SQLite only
        raise NotImplementedError(f"fleet status counts need triggers for {vendor}")
    schema_editor.execute(FILL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UNINSTALL)
    else:
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
    schema_editor.execute(f"DELETE FROM {COUNTS}")


class Migration(migrations.Migration):
    dependencies = [
        ("clearance", "0003_webhook_delivery_plural"),
        ("organizations", "0003_invitations"),
        ("vehicles", "0002_move_imports_and_telemetry"),
    ]

    operations = [
        migrations.CreateModel(
            name="FleetStatusCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("status", models.CharField(blank=True, max_length=32)),
                ("vehicles", models.BigIntegerField()),
                (
                    "organization",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=models.deletion.DO_NOTHING,
                        related_name="+",
                        to="organizations.organization",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["organization", "status"], name="clearance_f_organiz_73ca3c_idx"
                    )
                ],
            },
        ),
        migrations.RunPython(install, uninstall, elidable=False),
    ]
