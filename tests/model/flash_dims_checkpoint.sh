#!/usr/bin/env bash
# Writes the flash-dims checkpoint (1.95 GB, ../shared/fixtures/flash-dims) into OUTDIR once.
# It is regenerated only when the generator changes: OUTDIR/generator.sha256 holds the SHA-256 of
# the make_checkpoint.py that wrote it, and is written last, after the output's own SHA-256 matched
# the one the generator documents (the file is bit-identical on every machine).
# Usage: flash_dims_checkpoint.sh MAKE_CHECKPOINT_PY OUTDIR
set -euo pipefail
gen=$1 out=$2
want_gen=$(sha256sum "$gen" | cut -d' ' -f1)
if [ -f "$out/model.safetensors" ] && [ "$(cat "$out/generator.sha256" 2>/dev/null)" = "$want_gen" ]; then
  echo "flash-dims checkpoint up to date in $out (generator $want_gen)"
  exit 0
fi
want_file=$(grep -oE 'sha256 [0-9a-f]{64}  model.safetensors' "$gen" | head -1 | cut -d' ' -f2)
[ -n "$want_file" ] || { echo "no expected sha256 line in $gen" >&2; exit 1; }
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp"
t0=$(date +%s)
/usr/bin/python3 "$gen" "$out.tmp" | tail -n 2
got_file=$(sha256sum "$out.tmp/model.safetensors" | cut -d' ' -f1)
if [ "$got_file" != "$want_file" ]; then
  echo "flash-dims checkpoint: sha256 $got_file, the generator documents $want_file" >&2
  rm -rf "$out.tmp"
  exit 1
fi
mv "$out.tmp" "$out"
echo "$want_gen" > "$out/generator.sha256"
echo "flash-dims checkpoint written to $out in $(( $(date +%s) - t0 )) s (sha256 $got_file)"
