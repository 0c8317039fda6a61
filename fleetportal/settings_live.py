"""Live pages (issue 12): the fleet page's one poll. Imported by settings.py; read from the
environment like every setting (fleetportal/env.py)."""

from fleetportal.env import env_float

# The fleet page asks once per interval for the rows on screen that changed and the counters:
# every FLEET_LIVE_POLL_FLOWING_SECONDS while its answers brought changes in the last
# FLEET_LIVE_FLOWING_SECONDS (changes are flowing: a webhook reaches the screen within 2 s),
# every FLEET_LIVE_POLL_SECONDS while something moved or the user acted in the last
# FLEET_LIVE_QUIET_SECONDS, then backing off (doubling) up to FLEET_LIVE_POLL_MAX_SECONDS;
# stopped while the tab is hidden.
FLEET_LIVE_POLL_FLOWING_SECONDS = env_float("FLEET_LIVE_POLL_FLOWING_SECONDS", 1.0, minimum=0.5)
FLEET_LIVE_FLOWING_SECONDS = env_float("FLEET_LIVE_FLOWING_SECONDS", 10.0, minimum=0.0)
FLEET_LIVE_POLL_SECONDS = env_float("FLEET_LIVE_POLL_SECONDS", 1.5, minimum=0.5)
FLEET_LIVE_POLL_MAX_SECONDS = env_float("FLEET_LIVE_POLL_MAX_SECONDS", 30.0, minimum=1.0)
FLEET_LIVE_QUIET_SECONDS = env_float("FLEET_LIVE_QUIET_SECONDS", 60.0, minimum=1.0)
