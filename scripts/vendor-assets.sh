#!/usr/bin/env bash
# Refresh the vendored front-end assets from the npm registry (pinned versions; needs npm).
set -euo pipefail
HTMX_VERSION=2.0.11
ALPINE_VERSION=3.17.5
dest="$(cd "$(dirname "$0")/.." && pwd)/src/cockpit/console/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@${HTMX_VERSION}" "alpinejs@${ALPINE_VERSION}" >/dev/null
tar xzf "htmx.org-${HTMX_VERSION}.tgz" && cp package/dist/htmx.min.js "$dest/htmx-${HTMX_VERSION}.min.js" && rm -rf package
tar xzf "alpinejs-${ALPINE_VERSION}.tgz" && cp package/dist/cdn.min.js "$dest/alpinejs-${ALPINE_VERSION}.min.js" && rm -rf package
echo "vendored htmx ${HTMX_VERSION} and alpinejs ${ALPINE_VERSION} into $dest"
