#!/usr/bin/env bash
# Install Leaflet (and leaflet.markercluster) from the npm registry with npm and copy their
# dist files into static/vendor/ so pages never load anything from a CDN.
#
#   scripts/vendor_leaflet.sh            # the pinned versions below
#   LEAFLET_VERSION=1.9.4 scripts/vendor_leaflet.sh
#
# The copied files are committed; run this again only to upgrade.
#
# The minified files end with a `//# sourceMappingURL=…` comment. Their .map files are not shipped
# and that comment is removed: the maps hold no sources (they point at ../src/*.js, which would
# have to be served too), and the production static storage (ManifestStaticFilesStorage) refuses
# to collect a file that references one it cannot find.
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
for file in "$dest"/*.js "$dest"/*.css; do
  sed -i -E -e '\~^[[:space:]]*//[#@] sourceMappingURL=~d' \
    -e 's~/\*[#@] sourceMappingURL=[^*]*\*/~~g' "$file"
done
if grep -l 'sourceMappingURL' "$dest"/*.js "$dest"/*.css; then
  echo "A sourceMappingURL reference is left in the files above." >&2
  exit 1
fi
{
  echo "leaflet ${LEAFLET_VERSION} and leaflet.markercluster ${MARKERCLUSTER_VERSION}"
  echo "installed from the npm registry by scripts/vendor_leaflet.sh"
  echo "sha256 of the files as published on npm (the copies here lack the sourceMappingURL line):"
  (cd node_modules && sha256sum leaflet/dist/leaflet.js leaflet.markercluster/dist/leaflet.markercluster.js)
} > "$dest/VERSION"
echo "Leaflet ${LEAFLET_VERSION} + markercluster ${MARKERCLUSTER_VERSION} copied to ${dest#"$root"/}"
