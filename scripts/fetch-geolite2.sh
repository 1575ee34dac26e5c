#!/usr/bin/env bash
# Fetch the 2018 GeoLite2-City database used by the optional real-database tests and
# benchmarks of the `geo` crate (cdn-geo).
#
# Usage: scripts/fetch-geolite2.sh [DIR]      (DIR defaults to target/testdata/)
#
# The database ships inside the PyPI sdist `maxminddb-geolite2==2018.703`
# (GeoLite2 data by MaxMind, CC BY-SA 4.0, https://www.maxmind.com). It is a test
# fixture only: never commit it. The file lands at DIR/GeoLite2-City.mmdb; the
# tests find it there (or via the CDN_GEOLITE2_CITY environment variable).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$(cd "$here/.." && pwd)/target/testdata}"
mkdir -p "$dir"
out="$dir/GeoLite2-City.mmdb"

if [[ -s "$out" ]]; then
    echo "already present: $out"
    exit 0
fi

pip_cmd=()
if command -v pip >/dev/null 2>&1; then
    pip_cmd=(pip)
elif command -v pip3 >/dev/null 2>&1; then
    pip_cmd=(pip3)
elif command -v python3 >/dev/null 2>&1; then
    pip_cmd=(python3 -m pip)
else
    echo "fetch-geolite2: need pip, pip3 or python3 -m pip" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"${pip_cmd[@]}" download --quiet --no-deps --no-binary :all: \
    --dest "$tmp" "maxminddb-geolite2==2018.703"

sdist="$(find "$tmp" -maxdepth 1 \( -name 'maxminddb-geolite2-*.tar.gz' -o -name 'maxminddb_geolite2-*.tar.gz' \) | head -n 1)"
if [[ -z "$sdist" ]]; then
    echo "fetch-geolite2: pip did not produce the sdist; got:" >&2
    ls -l "$tmp" >&2
    exit 1
fi

member="$(tar -tzf "$sdist" | grep -E '/GeoLite2-City\.mmdb$' | head -n 1)"
if [[ -z "$member" ]]; then
    echo "fetch-geolite2: GeoLite2-City.mmdb not found inside $sdist" >&2
    exit 1
fi
tar -xzf "$sdist" -C "$tmp" "$member"
# Write under a temporary name, then rename: a reader never sees a half-written file.
cp "$tmp/$member" "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -c <"$out") bytes)"
