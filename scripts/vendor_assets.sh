#!/usr/bin/env bash
# Refresh the vendored front-end assets at their pinned versions (needs npm; uses the npm registry
# configured for npm). Bump a version here, run the script, then update the <script> tags that name
# the file (layout/base.html for htmx and Alpine, credits/_allocation_chart.html for Chart.js,
# SWAGGER_UI_VERSION in src/cockpit/api_docs.py for Swagger UI).
set -euo pipefail
HTMX_VERSION=2.0.11
ALPINE_VERSION=3.17.5
CHARTJS_VERSION=4.6.1
SWAGGER_UI_VERSION=5.36.0
dest="$(cd "$(dirname "$0")/.." && pwd)/src/cockpit/console/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# vendor PACKAGE VERSION FILE_IN_PACKAGE TARGET_NAME
vendor() {
  local tarball
  tarball="$(npm pack --silent "$1@$2" | tail -n 1)"
  rm -rf package && tar xzf "$tarball"
  # The source map is not vendored: drop the comment that would make browsers fetch it.
  sed '/^\/\/# sourceMappingURL=/d' "package/$3" >"$dest/$4"
  echo "vendored $1 $2 -> $4"
}

vendor htmx.org "$HTMX_VERSION" dist/htmx.min.js "htmx-${HTMX_VERSION}.min.js"
vendor alpinejs "$ALPINE_VERSION" dist/cdn.min.js "alpinejs-${ALPINE_VERSION}.min.js"
# The UMD build defines window.Chart; its header carries the MIT licence notice.
vendor chart.js "$CHARTJS_VERSION" dist/chart.umd.min.js "chartjs-${CHARTJS_VERSION}.min.js"
# Swagger UI for /api/docs (served by cockpit.api_docs): the standalone bundle and its stylesheet.
vendor swagger-ui-dist "$SWAGGER_UI_VERSION" swagger-ui-bundle.js "swagger-ui-${SWAGGER_UI_VERSION}.bundle.js"
sed '/^\/\*# sourceMappingURL=/d' "package/swagger-ui.css" >"$dest/swagger-ui-${SWAGGER_UI_VERSION}.css"
echo "vendored swagger-ui-dist $SWAGGER_UI_VERSION -> swagger-ui-${SWAGGER_UI_VERSION}.css"
# Apache-2.0: its licence and NOTICE travel with the copy.
cat package/LICENSE package/NOTICE >"$dest/swagger-ui-${SWAGGER_UI_VERSION}.LICENSE.txt"
