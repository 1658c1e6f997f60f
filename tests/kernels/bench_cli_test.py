"""`v4flash bench kernels|decode|prefill --json`: the JSON fields exist, the byte and FLOP counts
match an independent count from the safetensors header, and the ratios are the quotients they
claim to be; `bench decode --speculative 2 --force-accept`: the three modes, their step counts, and
the speculative output equal to the plain one. Usage: bench_cli_test.py V4FLASH TINY_CHECKPOINT_DIR"""
import json
import math
import struct
import subprocess
import sys

exe, ckpt = sys.argv[1], sys.argv[2]


def run(*args):
    out = subprocess.run([exe, "bench", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def close(a, b, rel=2e-3, abs_=2e-3):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


# --- kernels -------------------------------------------------------------------------------------
k = run("kernels", "--threads", "1", "--batch", "1,2", "--repeats", "1", "--buffer-mib", "16",
        "--working-set-mib", "16", "--json")
check(len(k["read_bw"]) == 1 and k["read_bw"][0]["threads"] == 1 and k["read_bw"][0]["gbs_best"] > 0, "read_bw")
check(0 <= k.get("read_bw_huge_share", -1) <= 1, "kernels read_bw_huge_share")
expected_bytes = {  # data + E8M0 scales, from the format definitions
    ("F8_E4M3", 4096, 4096): 4096 * 4096 + 32 * 32,
    ("I8", 2048, 4096): 2048 * 4096 // 2 + 2048 * (4096 // 32),
    ("BF16", 4096, 4096): 4096 * 4096 * 2,
    ("F32", 4096, 4096): 4096 * 4096 * 4,
}
seen, inputs = set(), set()
bw = k["read_bw"][0]["gbs_best"]
for r in k["linear"]:
    key = (r["dtype"], r["rows"], r["cols"])
    check(key in expected_bytes, f"unexpected case {key}")
    check(r["bytes"] == expected_bytes.get(key), f"bytes of {key}: {r['bytes']}")
    seen.add((key, r["n"]))
    inputs.add((key, r["n"], r.get("input")))
    check(r["ms_min"] > 0 and r["ms_median"] >= r["ms_min"], f"times of {key}")
    check(close(r["gbs_best"], r["bytes"] / (r["ms_min"] * 1e-3) / 1e9, rel=2e-2), f"GB/s of {key}")
    check(close(r["bw_ratio"], r["gbs_best"] / bw, rel=2e-2), f"ratio of {key}")
check(len(seen) == 8, f"cases: {sorted(seen)}")
# FP8 and FP4 run with quantised (BF16-exact) and with fp32 activations, BF16 / F32 with fp32
want_inputs = {(key, n, x) for key in expected_bytes for n in (1, 2)
               for x in (("bf16", "fp32") if key[0] in ("F8_E4M3", "I8") else ("fp32",))}
check(inputs == want_inputs, f"inputs: {sorted(inputs ^ want_inputs)}")

# --- independent cost of one token from the checkpoint header ------------------------------------
with open(f"{ckpt}/config.json") as f:
    cfg = json.load(f)
with open(f"{ckpt}/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
dense_b = routed_b = embed_row = head_b = 0.0
dense_p = routed_p = head_p = 0.0
L_ = cfg["num_hidden_layers"]
layer_dense_b, layer_routed_b = [0.0] * L_, [0.0] * L_  # per main layer ("layers.<l>.")
outside_b = 0.0  # dense tensors outside the layers (hc_head, norm), read by the head
for name, t in header.items():
    if name == "__metadata__" or name.startswith("mtp."):
        continue
    nbytes = t["data_offsets"][1] - t["data_offsets"][0]
    params = math.prod(t["shape"]) * (2 if t["dtype"] == "I8" else 1) * (0 if t["dtype"] == "F8_E8M0" else 1)
    layer = int(name.split(".")[1]) if name.startswith("layers.") else None
    if name == "embed.weight":
        embed_row = nbytes / cfg["vocab_size"]
    elif name == "head.weight":
        head_b, head_p = nbytes, params
    elif ".ffn.gate.tid2eid" in name:
        dense_b += nbytes / cfg["vocab_size"]
        layer_dense_b[layer] += nbytes / cfg["vocab_size"]
    elif ".ffn.experts." in name:
        routed_b += nbytes
        routed_p += params
        layer_routed_b[layer] += nbytes
    else:
        dense_b += nbytes
        dense_p += params
        if layer is None:
            outside_b += nbytes
        else:
            layer_dense_b[layer] += nbytes
E, k_, L = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["num_hidden_layers"]
weights_per_token = dense_b + head_b + routed_b / E * k_ + embed_row  # batch 1, state excluded
flops_decode = 2 * (dense_p + routed_p / E * k_ + head_p)

d = run("decode", "--model", ckpt, "--threads", "1", "--tokens", "2", "--prompt", "4", "--repeats", "1",
        "--buffer-mib", "16", "--json")
for key in ("tokens_per_s", "bytes_per_token", "read_bw_gbs", "bw_ratio"):
    check(key in d and d[key] > 0, f"decode {key}")
state = d["bytes_per_token"] - weights_per_token
# Where the weights and the bandwidth buffer sit (core/huge_pages.h): the model's mapping holds at
# least the bytes a step reads, and the shares are fractions.
check(d.get("weights") == "mapped", "decode weights")
check(d.get("weights_resident_bytes", 0) >= dense_b, f"decode weights_resident_bytes {d.get('weights_resident_bytes')}")
check(0 <= d.get("weights_huge_share", -1) <= 1 and 0 <= d.get("read_bw_huge_share", -1) <= 1, "decode huge shares")
check(0 <= state < 4e6, f"decode bytes_per_token {d['bytes_per_token']} vs weights {weights_per_token}")
check(close(d["flops_per_token"], flops_decode, rel=1e-6), f"decode flops {d['flops_per_token']} vs {flops_decode}")
check(close(d["bw_ratio"], d["bytes_per_token"] * d["tokens_per_s"] / 1e9 / d["read_bw_gbs"], rel=2e-2),
      "decode bw_ratio")
# Both bounds, from the counts above and the bandwidth / peak the run measured, and the ratio to the
# lower one (the one that binds).
check(d.get("peak_gflops", 0) > 0, "decode peak_gflops")
read_tps = d["read_bw_gbs"] * 1e9 / d["bytes_per_token"]
compute_tps = d["peak_gflops"] * 1e9 / flops_decode
check(close(d.get("read_bound_tokens_per_s", -1), read_tps, rel=1e-3), f"read bound {d.get('read_bound_tokens_per_s')} vs {read_tps}")
check(close(d.get("compute_bound_tokens_per_s", -1), compute_tps, rel=1e-3),
      f"compute bound {d.get('compute_bound_tokens_per_s')} vs {compute_tps}")
check(d.get("bound") == ("read" if read_tps <= compute_tps else "compute"), f"binding bound {d.get('bound')}")
check(close(d.get("bound_ratio", -1), d["tokens_per_s"] / min(read_tps, compute_tps), rel=1e-2), "decode bound_ratio")
check(close(d.get("flops_ratio", -1), flops_decode * d["tokens_per_s"] / 1e9 / d["peak_gflops"], rel=1e-2),
      "decode flops_ratio")

# Per layer and head: types from compress_ratios, bytes from the header split by tensor location,
# and layers + head + state add up to the whole-step bytes (within 1%).
types = {0: "SWA", 4: "CSA"}
layers = d.get("layers", [])
check(len(layers) == L_, f"decode layers: {len(layers)} entries, want {L_}")
for l, row in enumerate(layers):
    check(row.get("layer") == l and row.get("type") == types.get(cfg["compress_ratios"][l], "HCA"), f"layer {l}: {row}")
    want = layer_dense_b[l] + layer_routed_b[l] / E * k_
    check(close(row.get("bytes_per_token", -1), want, rel=1e-3), f"layer {l} bytes {row.get('bytes_per_token')} vs {want}")
    check(row.get("seconds_per_token", 0) > 0 and row.get("gbs", 0) > 0 and "bw_ratio" in row and
          row.get("flops_ratio", 0) > 0, f"layer {l} figures")
head = d.get("head", {})
want_head = outside_b + head_b + embed_row
check(close(head.get("bytes_per_token", -1), want_head, rel=1e-3), f"head bytes {head.get('bytes_per_token')} vs {want_head}")
check(head.get("seconds_per_token", 0) > 0, "head seconds")
parts = sum(r.get("bytes_per_token", 0) for r in layers) + head.get("bytes_per_token", 0) + d.get("state_bytes_per_token", 0)
check(math.isclose(parts, d["bytes_per_token"], rel_tol=1e-2), f"parts {parts} vs whole {d['bytes_per_token']}")
check(sum(r.get("seconds_per_token", 0) for r in layers) + head.get("seconds_per_token", 0) <= 1.05 / d["tokens_per_s"],
      "stage times exceed the step time")
check("ops" not in d, "decode: ops without --profile")

# --profile: the layers' time by operation; the ten operations are there, with time in the ones
# every layer of this checkpoint runs, and together they fit within the layers' own time.
p = run("decode", "--model", ckpt, "--threads", "1", "--tokens", "2", "--prompt", "4", "--repeats", "1",
        "--buffer-mib", "16", "--json", "--profile")
ops = {o["op"]: o for o in p.get("ops", [])}
check(len(ops) == 10, f"decode --profile: {len(ops)} operations: {list(ops)}")
for name in ("hc mix + norms", "attn q (wq_a, wq_b, rope)", "attn core (scores, values)", "moe routed experts"):
    check(ops.get(name, {}).get("seconds_per_token", 0) > 0, f"decode --profile: no time in {name!r}")
layer_total = sum(r.get("seconds_per_token", 0) for r in p.get("layers", []))
check(sum(o["seconds_per_token"] for o in ops.values()) <= layer_total * 1.02 + 1e-6,
      "decode --profile: operations exceed the layers' time")

chunk = 8
p = run("prefill", "--model", ckpt, "--threads", "1", "--tokens", str(chunk), "--repeats", "1", "--json")
flops_prefill = 2 * (dense_p + routed_p / E * k_ + head_p / chunk)
for key in ("tokens_per_s", "flops_per_token", "peak_gflops", "flops_ratio"):
    check(key in p and p[key] > 0, f"prefill {key}")
check(p.get("peak_kind") in ("bf16_dot", "fp32_fma"), f"prefill peak_kind {p.get('peak_kind')}")
check(close(p["flops_per_token"], flops_prefill, rel=1e-6), f"prefill flops {p['flops_per_token']} vs {flops_prefill}")
check(close(p["flops_ratio"], p["flops_per_token"] * p["tokens_per_s"] / 1e9 / p["peak_gflops"], rel=2e-2),
      "prefill flops_ratio")
# The matrix products alone: their FLOPs are the weights' (all but the few outside any matmul:
# embedding rows, the last norm), within the run's time.
check(0 < p.get("matmul_share", 0) <= 1 and p.get("matmul_gflops", 0) > 0, f"prefill matmul share {p.get('matmul_share')}")
check(close(p["matmul_flops_ratio"], p["matmul_gflops"] / p["peak_gflops"], rel=2e-2), "prefill matmul_flops_ratio")
check(0.95 * p["flops_per_token"] <= p["matmul_flops_per_token"] <= p["flops_per_token"],
      f"prefill matmul FLOPs {p['matmul_flops_per_token']} vs {p['flops_per_token']}")
pl, ph = p.get("layers", []), p.get("head", {})
check(len(pl) == L_ and all("flops_ratio" in r and r["flops_per_token"] > 0 for r in pl), "prefill layers")
check(close(sum(r["flops_per_token"] for r in pl) + ph.get("flops_per_token", 0), p["flops_per_token"], rel=1e-6),
      "prefill per-part FLOPs do not add up to the whole")

# --- decode through the engine with and without speculative decoding ---------------------------------
s = run("decode", "--model", ckpt, "--speculative", "2", "--force-accept", "--tokens", "22", "--threads", "1",
        "--repeats", "1", "--json")
modes = {m["mode"]: m for m in s.get("modes", [])}
check(set(modes) == {"plain", "speculative", "force-accept"}, f"speculative modes: {sorted(modes)}")
check(s.get("identical_to_plain") is True, "bench decode --speculative: output differs from plain decoding")
if len(modes) == 3:
    check(modes["plain"]["verify_steps"] == 0 and modes["plain"]["decode_tokens"] == 21, f"plain: {modes['plain']}")
    sp = modes["speculative"]
    check(sp["verify_steps"] == 21 and sp["draft_tokens"] == 2 * sp["verify_steps"], f"speculative: {sp}")
    fa = modes["force-accept"]  # 21 tokens after the first: 7 verify steps of 2 accepted drafts + 1
    check(fa["verify_steps"] == 7 and fa["accepted_tokens"] == fa["draft_tokens"] == 14 and
          close(fa["tokens_per_verify_step"], 3.0, rel=1e-9), f"force-accept: {fa}")
    for m in modes.values():
        check(close(m["tokens_per_s"], m["decode_tokens"] / m["decode_seconds"], rel=1e-6), f"tokens/s of {m['mode']}")

# --- long contexts: decode on synthetic states of 128 and 512 positions --------------------------------
# The state holds its entries and indexer keys packed (model/state_rows.h): a tiny-fixture entry is
# 324 bytes, a key 68, in blocks of 64 rows. From 128 to 512 positions the ratio-4 layers 1 and 3 go
# from 32 to 128 entries and keys (one block to two of each), the ratio-128 layers 2 and 4 from 1 to
# 4 entries (one block): 2 * 64 * (324 + 68) bytes more over 384 positions = 130.7 per position, plus
# the block lists' own few bytes. Two decode steps append no entry.
cx = run("context", "--model", ckpt, "--contexts", "128,512", "--threads", "1", "--tokens", "2", "--repeats", "1",
         "--json")
run0 = cx["runs"][0]
rows = run0["contexts"]
check([r["context"] for r in rows] == [128, 512], f"context rows {rows}")
check(all(r["tokens_per_s"] > 0 and 0 <= r["indexer_share"] <= 1 and 0 <= r["attn_core_share"] <= 1 for r in rows),
      "context figures")
check(close(rows[1]["ratio_to_first"], rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"]), "context ratio")
bpp = run0["state_bytes_per_position"]
check(2 * 64 * (324 + 68) / 384 <= bpp <= 2 * 64 * (324 + 68) / 384 + 1, f"state bytes per position {bpp}")
check(close(run0["state_bytes_at_1m"], rows[0]["state_bytes"] + bpp * (2**20 - 128), rel=1e-3),
      "state bytes at 1M positions")
check(run0["isa"] and run0["cpu"], "context: isa and cpu named")
hp = run("context", "--model", ckpt, "--contexts", "128,512", "--threads", "1", "--tokens", "2", "--repeats", "1",
         "--weights", "hugepages", "--json")["runs"][0]
check([r["state_bytes"] for r in hp["contexts"]] == [r["state_bytes"] for r in rows], "context with --weights hugepages")
bad_w = subprocess.run([exe, "bench", "decode", "--model", ckpt, "--weights", "huge"], capture_output=True, text=True)
check(bad_w.returncode != 0 and "--weights" in bad_w.stderr, f"--weights huge refused: {bad_w.stderr[-200:]}")
bad = subprocess.run([exe, "bench", "context", "--model", ckpt, "--contexts", "100"], capture_output=True, text=True)
check(bad.returncode != 0 and "multiple of 128" in bad.stderr, f"context 100 refused: {bad.stderr[-200:]}")

# --- the kernel variant: named in every bench output, chosen by --isa / V4FLASH_ISA -------------------
import os
cpu = json.loads(subprocess.run([exe, "cpu", "--json"], check=True, capture_output=True, text=True).stdout)
check(cpu["active"] == cpu["best"] and cpu["best"] == cpu["supported"][-1], f"cpu --json: {cpu}")
for row in (k, d, p, s):
    check(row.get("isa") == cpu["active"] and row.get("cpu") == cpu["cpu"], f"bench isa/cpu fields: {row.get('isa')}")
for isa in cpu["supported"]:
    env = dict(os.environ, V4FLASH_ISA=isa)
    out = subprocess.run([exe, "bench", "prefill", "--model", ckpt, "--threads", "1", "--tokens", "4", "--repeats", "1",
                          "--json"], check=True, capture_output=True, text=True, env=env).stdout
    row = json.loads(out)
    check(row.get("isa") == isa, f"V4FLASH_ISA={isa}: bench says {row.get('isa')}")
    want_peak = "bf16_dot" if isa == "avx512bf16" and cpu["bf16_pairs"] == "dot" else "fp32_fma"
    check(row.get("peak_kind") == want_peak or isa == "scalar", f"{isa}: peak_kind {row.get('peak_kind')}")
    if isa == "avx512bf16":  # BF16 pairs forced onto the dot products: their peak
        env["V4FLASH_BF16_PAIRS"] = "dot"
        out = subprocess.run([exe, "bench", "prefill", "--model", ckpt, "--threads", "1", "--tokens", "4", "--repeats",
                              "1", "--json"], check=True, capture_output=True, text=True, env=env).stdout
        check(json.loads(out).get("peak_kind") == "bf16_dot", f"V4FLASH_BF16_PAIRS=dot: peak_kind {out[-200:]}")
    flag = subprocess.run([exe, "cpu", "--json", "--isa", isa], check=True, capture_output=True, text=True).stdout
    check(json.loads(flag)["active"] == isa, f"--isa {isa}: {flag}")
want_pairs = ("dot", "fma") if "avx512bf16" in cpu["supported"] else ("none",)
check(cpu.get("bf16_pairs") in want_pairs, f"cpu --json bf16_pairs: {cpu.get('bf16_pairs')}")
bad = subprocess.run([exe, "cpu"], capture_output=True, text=True, env=dict(os.environ, V4FLASH_BF16_PAIRS="fast"))
check(bad.returncode != 0 and "V4FLASH_BF16_PAIRS" in bad.stderr or "avx512bf16" not in cpu["supported"],
      f"V4FLASH_BF16_PAIRS=fast: rc {bad.returncode}, {bad.stderr[-200:]!r}")
bad = subprocess.run([exe, "cpu", "--isa", "avx9000"], capture_output=True, text=True)
check(bad.returncode != 0 and "avx512bf16" in bad.stderr, f"--isa avx9000: rc {bad.returncode}, {bad.stderr!r}")
for isa in ("avx2", "avx512", "avx512bf16"):
    if isa not in cpu["supported"]:  # an unsupported variant is refused by name, not run
        r = subprocess.run([exe, "cpu", "--isa", isa], capture_output=True, text=True)
        check(r.returncode != 0 and "not supported" in r.stderr, f"--isa {isa} on a CPU without it: {r.stderr!r}")

if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("bench CLI: OK")
