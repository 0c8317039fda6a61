"""Settings of telemetry: pulls, retention, staleness, the vehicle page's track, and the MQTT
brokers of the stream (docs/telemetry.md). Imported by settings.py, which merges the beat
entries below (the pull schedule's own entry is durable work's: settings_durable.py)."""

from fleetportal.env import env_int, env_str

TELEMETRY_PULL_INTERVAL_SECONDS = env_int("TELEMETRY_PULL_INTERVAL_SECONDS", 300, minimum=10)
# Pulls are done by this many waker chains (one message each in the broker, whatever the fleet
# size), up to this many vehicles per task (telemetry/schedule.py).
TELEMETRY_PULL_WAKERS = env_int("TELEMETRY_PULL_WAKERS", 2, minimum=1)
TELEMETRY_PULL_BATCH_SIZE = env_int("TELEMETRY_PULL_BATCH_SIZE", 20, minimum=1)
TELEMETRY_RETENTION_DAYS = env_int("TELEMETRY_RETENTION_DAYS", 90, minimum=1)
TELEMETRY_PRUNE_BATCH_SIZE = env_int("TELEMETRY_PRUNE_BATCH_SIZE", 5000, minimum=1)
# A value older than this is shown as stale (default: three pull intervals).
TELEMETRY_STALE_AFTER_SECONDS = env_int(
    "TELEMETRY_STALE_AFTER_SECONDS", 3 * TELEMETRY_PULL_INTERVAL_SECONDS, minimum=10
)
# The vehicle page's map: how many of the last positions at most (charts: telemetry/history.py).
TELEMETRY_TRACK_POINTS = env_int("TELEMETRY_TRACK_POINTS", 200, minimum=2)
# HM MQTT v2 broker (TLS with the credential's client certificate). CA file: empty = system store.
HM_MQTT_HOST = env_str("HM_MQTT_HOST", "mqtt-v2.high-mobility.com")
HM_MQTT_PORT = env_int("HM_MQTT_PORT", 8883, minimum=1)
HM_MQTT_CA_FILE = env_str("HM_MQTT_CA_FILE", "")
# The local broker the simulator publishes to (plain TCP; mqtt://host:port).
SIMULATOR_MQTT_URL = env_str("SIMULATOR_MQTT_URL", "mqtt://127.0.0.1:1883")
SIMULATOR_MQTT_PUBLISH_INTERVAL_SECONDS = env_int(
    "SIMULATOR_MQTT_PUBLISH_INTERVAL_SECONDS", 10, minimum=1
)

TELEMETRY_BEAT_SCHEDULE = {
    "prune-telemetry": {"task": "telemetry.tasks.prune_telemetry", "schedule": 3600.0},
}
