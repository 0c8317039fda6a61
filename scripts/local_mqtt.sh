#!/usr/bin/env bash
# The demo's MQTT broker for `make run`: the simulator publishes vehicle data to it and
# `stream_consume` reads it back. Uses a broker already listening on SIMULATOR_MQTT_URL, else starts
# Mosquitto in the foreground, else explains how to get streaming (pulling works without it).
# It never exits on its own, because honcho stops every process when one of them ends.
set -uo pipefail

url="${SIMULATOR_MQTT_URL:-mqtt://127.0.0.1:1883}"
address="${url#*://}"
address="${address%%/*}"
host="${address%:*}"
port="${address##*:}"
[ "$host" = "$address" ] && port=1883

if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
  echo "Using the MQTT broker already listening on $host:$port."
elif [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ]; then
  if command -v mosquitto >/dev/null; then
    echo "Starting Mosquitto on $host:$port for the simulator's telemetry stream."
    exec mosquitto -p "$port"
  fi
  echo "Mosquitto is not installed, so the demo's telemetry is pulled but not streamed."
  echo "To stream it too: apt-get install mosquitto (or brew install mosquitto), then make run again."
else
  echo "No MQTT broker answers on $host:$port (SIMULATOR_MQTT_URL); telemetry is pulled, not streamed."
fi
exec sleep infinity
