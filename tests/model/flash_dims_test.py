#!/usr/bin/python3
"""The flash-dims oracle through `v4flash logits` (exact mode): case L of
../shared/fixtures/flash-dims/reference-exact.safetensors at the real V4-Flash dimensions, with the
README's bounds: logits and MTP logits max-abs <= 3e-4 and argmax 100%, each layer's out_last
max-abs <= 5e-5 x max|ref|, layer 2's indexer selections identical as sets.
Usage: flash_dims_test.py V4FLASH SHARED_DIR CHECKPOINT_DIR WORK_DIR"""
import os
import resource
import subprocess
import sys
import time

import numpy as np

from cli_test import load

PREFILL = 2304
LOGIT_BOUND, STREAM_BOUND = 3e-4, 5e-5


def compare_logits(name, got, want, failures):
    if got.shape != want.shape:
        failures.append(f"{name}: shape {got.shape}, reference {want.shape}")
        return
    diff = float(np.abs(got.astype(np.float64) - want).max())
    agree = float((got.argmax(-1) == want.argmax(-1)).mean())
    print(f"[flash-dims] {name}: rows {want.shape[0]}  max-abs {diff:.3g} (bound {LOGIT_BOUND:g})  "
          f"argmax {100 * agree:.1f}%")
    if not diff <= LOGIT_BOUND or agree != 1.0:
        failures.append(name)


def main():
    v4, shared, ckpt, work = sys.argv[1:5]
    ref = load(os.path.join(shared, "fixtures", "flash-dims", "reference-exact.safetensors"))
    os.makedirs(work, exist_ok=True)
    tokens_file = os.path.join(work, "L.tokens")
    with open(tokens_file, "w") as f:
        f.write(",".join(str(int(t)) for t in ref["L.tokens"]))
    out = os.path.join(work, "L.safetensors")
    t0 = time.time()
    subprocess.run([v4, "logits", "--model", ckpt, "--tokens-file", tokens_file, "--prefill", str(PREFILL),
                    "--exact", "--dump-layers", "--mtp", "--threads", "2", "--out", out], check=True)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"[flash-dims] v4flash logits: {PREFILL}-token prefill + MTP + {len(ref['L.tokens']) - PREFILL} decode "
          f"steps in {time.time() - t0:.1f} s wall, {cpu.ru_utime + cpu.ru_stime:.1f} s CPU (2 threads)")
    got = load(out)
    failures = []
    compare_logits("logits", got["logits"], ref["L.logits"], failures)
    rows = ref["L.mtp_logits"].shape[0]
    compare_logits("mtp_logits", got["mtp_logits"][PREFILL - rows:], ref["L.mtp_logits"], failures)
    for layer in range(4):
        g, w = got[f"layer{layer}.out_last"], ref[f"L.out_last.layer{layer}"]
        rel = float(np.abs(g.astype(np.float64) - w).max() / np.abs(w).max()) if g.shape == w.shape else float("inf")
        print(f"[flash-dims] layer{layer}.out_last: max-abs / max|ref| {rel:.3g} (bound {STREAM_BOUND:g})")
        if not rel <= STREAM_BOUND:
            failures.append(f"layer{layer}.out_last")
    want = ref["L.index_topk.layer2"]
    sel = got["layer2.indexer_topk"][PREFILL - want.shape[0]:]
    differing = sum(set(int(x) for x in a if x >= 0) != set(int(x) for x in b) for a, b in zip(sel, want))
    print(f"[flash-dims] layer2 indexer top-{want.shape[1]}: {differing} of {want.shape[0]} rows differ as sets")
    if differing:
        failures.append("layer2 indexer selections")
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("flash-dims through v4flash logits: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
