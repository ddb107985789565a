#!/usr/bin/env python3
"""Regenerate country_centroids.csv from the world-countries npm package.

Usage (from any directory):

    cd /tmp && npm pack world-countries && tar xzf world-countries-*.tgz
    python3 make_country_centroids.py /tmp/package > country_centroids.csv

Reads package/countries.json (mledoze/countries, ODbL-1.0) and writes one row
per country: its ISO 3166-1 alpha-2 code (`cca2`) and the dataset's `latlng`
point, copied unchanged. Nothing is computed or invented here.
"""

import json
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    package = Path(sys.argv[1])
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    countries = json.loads((package / "countries.json").read_text(encoding="utf-8"))
    rows = []
    for country in countries:
        code = country["cca2"]
        lat, lon = country["latlng"]
        if len(code) != 2 or not code.isalpha() or not code.isupper():
            raise SystemExit(f"unexpected cca2 {code!r}")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise SystemExit(f"{code}: latlng {lat},{lon} out of range")
        rows.append((code, lat, lon))
    rows.sort()
    out = sys.stdout
    out.write("# Country representative points: ISO 3166-1 alpha-2 code, latitude, longitude (WGS84 degrees).\n")
    out.write(f"# Source: mledoze/countries (https://github.com/mledoze/countries), npm package {meta['name']} {meta['version']},\n")
    out.write("#   fields cca2 and latlng, copied unchanged by make_country_centroids.py.\n")
    out.write("# Licence: ODC Open Database License (ODbL) 1.0, https://opendatacommons.org/licenses/odbl/1.0/\n")
    out.write("#   This derived table is likewise made available under the ODbL 1.0. See README.md in this directory.\n")
    out.write("iso2,lat,lon\n")
    for code, lat, lon in rows:
        out.write(f"{code},{lat!r},{lon!r}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
