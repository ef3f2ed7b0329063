#!/bin/bash
# crypt.sh - what encryption costs, buoy against s3backer, side by side.
#
#   bench/crypt.sh                  quick mode (about 10 minutes)
#   BENCH_QUICK= bench/crypt.sh     the full sizes of bench/run.sh
#
# Runs bench/run.sh (moto behind the 20 ms delay proxy, the same workloads
# and counting) for buoy-remote, buoy-crypt (the same, encrypted:
# XChaCha20-Poly1305 in 16 KiB chunks, key from Argon2id), s3b-64k and
# s3b-64k-crypt (s3backer --encrypt, which also compresses), and writes
# bench/RESULTS-crypt.md: each workload's durable speed, and the ratios
# encrypted / plain and buoy / s3backer.  bench/RESULTS.md is left alone.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_QUICK=${BENCH_QUICK-1}
export BENCH_SYSTEMS=${BENCH_SYSTEMS:-buoy-remote buoy-crypt s3b-64k s3b-64k-crypt}
export BENCH_WORKLOADS=${BENCH_WORKLOADS:-seqwrite seqread randwrite randread}
export BENCH_OUT=${BENCH_OUT:-$top/bench/out-crypt}
export BENCH_REPORT=0
"$top/bench/run.sh"
python3 - "$BENCH_OUT" "$top/bench/RESULTS-crypt.md" <<'PY'
import csv, statistics, sys
out, dest = sys.argv[1], sys.argv[2]
rows = {}
with open(out + "/results.tsv") as f:
    for r in csv.DictReader(f, delimiter="\t"):
        rows.setdefault((r["system"], r["workload"]), []).append(r)
env = dict(l.rstrip("\n").split(" ", 1) for l in open(out + "/env.txt") if " " in l)
def val(sys_, wl):
    rs = rows.get((sys_, wl))
    if not rs:
        return None
    key = "durable_MBps" if wl.startswith("seq") else "durable_iops"
    return statistics.median(float(r[key]) for r in rs)
def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"
names = ["buoy-remote", "buoy-crypt", "s3b-64k", "s3b-64k-crypt"]
units = {"seqwrite": "MB/s", "seqread": "MB/s", "randwrite": "IOPS", "randread": "IOPS"}
w = []
w.append("# What encryption costs: buoy against s3backer\n")
w.append(f"Mode {env.get('mode')}, commit {env.get('commit')}, {env.get('date')}; moto behind a "
         f"{env.get('delay_ms')} ms delay proxy on loopback, {env.get('cores')} cores "
         f"({env.get('cpu')}), {env.get('seq_mb')} MiB sequential, {env.get('span_mb')} MiB "
         f"random span, {env.get('runtime_s')} s random runs.  Durable numbers: writes count "
         "until the daemon has nothing left to upload.\n")
w.append("| workload | " + " | ".join(names) + " | buoy crypt/plain | s3b crypt/plain | "
         "buoy-crypt / s3b-64k-crypt |")
w.append("|---|" + "---:|" * (len(names) + 3))
for wl in units:
    v = [val(n, wl) for n in names]
    cells = [f"{x:,.1f}" if x is not None else "-" for x in v]
    w.append(f"| {wl} ({units[wl]}) | " + " | ".join(cells) +
             f" | {ratio(v[1], v[0])} | {ratio(v[3], v[2])} | {ratio(v[1], v[3])} |")
w.append("")
w.append("buoy encrypts every object but the superblock (XChaCha20-Poly1305, a random "
         "24-byte nonce per 16 KiB chunk, bound to the volume, the key and the chunk's "
         "place; docs/FORMAT.md, Encryption); s3backer --encrypt encrypts each block "
         "(and compresses it first).")
w.append("")
w.append("Rerun: `bench/crypt.sh` (quick) or `BENCH_QUICK= bench/crypt.sh` (full); raw "
         "results in `bench/results-crypt.tsv`.")
# the section bench/crypt-dir.sh's numbers are kept in (by hand) stays
try:
    old = open(dest).read()
    at = old.find("\n## On the directory store")
    tail = old[at:] if at >= 0 else ""
except OSError:
    tail = ""
open(dest, "w").write("\n".join(w) + "\n" + tail)
print("\n".join(w))
PY
cp "$BENCH_OUT/results.tsv" "$top/bench/results-crypt.tsv"
