"""The shipped binary runs on any x86-64 CPU: only the kernel variants (kernels/x86/, namespaces
v4::kernels::detail, v4::kernels::bf16dot and v4::kernels::fp4vnni) and GCC's multiversioned clones (target_clones:
`[clone .arch_x86_64_v3]` / `v4`, reached only through an ifunc resolver that checks the CPU at
load; the sampler's and the activation quantisers' loops) may use AVX/AVX-512 registers; every
other function must be baseline x86-64, or a CPU without those instructions would crash outside
the dispatch.
Usage: portable_binary_test.py V4FLASH"""
import re
import subprocess
import sys

exe = sys.argv[1]
try:
    dis = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", exe], check=True, capture_output=True,
                         text=True).stdout
except FileNotFoundError:
    print("objdump not installed (Debian package binutils); skipped")
    sys.exit(77)

allowed = ("v4::kernels::detail::", "v4::kernels::bf16dot::", "v4::kernels::fp4vnni::")
clone = re.compile(r"\[clone \.arch_x86_64_v[34]\]")
wide = re.compile(r"%[yz]mm\d+|%k[1-7]\b")
offenders, variant_functions, clones, resolvers = {}, set(), set(), set()
function = None
for line in dis.splitlines():
    m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
    if m:
        function = m.group(1)
        if function.endswith("[clone .resolver]"):
            resolvers.add(function[: -len(" [clone .resolver]")])
        continue
    if function and wide.search(line):
        if function.startswith(allowed) or any(a in function for a in allowed):
            variant_functions.add(function)
        elif clone.search(function):
            clones.add(function)
        else:
            offenders.setdefault(function, line.strip())
# A clone is safe only if its function dispatches through a resolver.
for f in sorted(clones):
    if clone.sub("", f).strip() not in resolvers:
        offenders.setdefault(f, "a clone without an ifunc resolver")
print(f"{len(variant_functions)} kernel-variant functions and {len(clones)} multiversioned clones use AVX/AVX-512 "
      "registers")
if not variant_functions:
    print("FAILED: no kernel variant found in the binary (is the dispatch compiled in?)")
    sys.exit(1)
if offenders:
    print(f"FAILED: {len(offenders)} functions outside the kernel variants use AVX/AVX-512:")
    for f, l in list(offenders.items())[:20]:
        print(f"  {f}: {l}")
    sys.exit(1)
print("portable binary: OK")
