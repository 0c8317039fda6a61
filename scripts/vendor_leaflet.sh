#!/usr/bin/env bash
# Install Leaflet (and leaflet.markercluster) from the npm registry with npm and copy their
# dist files into static/vendor/ so pages never load anything from a CDN.
#
#   scripts/vendor_leaflet.sh            # the pinned versions below
#   LEAFLET_VERSION=1.9.4 scripts/vendor_leaflet.sh
#
# The copied files are committed; run this again only to upgrade.
set -euo pipefail

LEAFLET_VERSION="${LEAFLET_VERSION:-1.9.4}"
MARKERCLUSTER_VERSION="${MARKERCLUSTER_VERSION:-1.5.3}"

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts --save-exact \
  "leaflet@${LEAFLET_VERSION}" "leaflet.markercluster@${MARKERCLUSTER_VERSION}" >/dev/null

dest="$root/static/vendor/leaflet"
rm -rf "$dest"
mkdir -p "$dest/images"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css "$dest/"
cp node_modules/leaflet/dist/images/*.png "$dest/images/"
cp node_modules/leaflet/LICENSE "$dest/LICENSE"
cp node_modules/leaflet.markercluster/dist/leaflet.markercluster.js \
   node_modules/leaflet.markercluster/dist/MarkerCluster.css \
   node_modules/leaflet.markercluster/dist/MarkerCluster.Default.css "$dest/"
cp node_modules/leaflet.markercluster/MIT-LICENCE.txt "$dest/LICENSE.markercluster"
{
  echo "leaflet ${LEAFLET_VERSION} and leaflet.markercluster ${MARKERCLUSTER_VERSION}"
  echo "installed from the npm registry by scripts/vendor_leaflet.sh"
  (cd node_modules && sha256sum leaflet/dist/leaflet.js leaflet.markercluster/dist/leaflet.markercluster.js)
} > "$dest/VERSION"
echo "Leaflet ${LEAFLET_VERSION} + markercluster ${MARKERCLUSTER_VERSION} copied to ${dest#"$root"/}"
