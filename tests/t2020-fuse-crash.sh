#!/bin/bash
# t2020-fuse-crash.sh - kill -9 the buoy daemon in the middle of a
# write-heavy run on ext4, TRIALS times (default 20): after each crash buoy
# umount cleans up the dead mount, the next mount replays the journal, every
# file whose fsync returned before the kill is intact, and after ext4 has
# replayed its own journal fsck.ext4 -fn finds nothing wrong.
# Durability alternates: remote on even trials, local on odd ones.
. tests/lib/test-lib.sh
. tests/lib/fuse-lib.sh
requires mkfs.ext4 fsck.ext4 findmnt python3

dir=$(mk_tmpdir)
mp=$dir/mnt fs=$dir/fs cache=$cache_root/crash
mkdir -p "$mp" "$fs"
TRIALS=${TRIALS:-20}

# The writer: files of random size, each fsync'd with its directory; only
# then is its name and checksum recorded (outside the volume).
cat >"$dir/writer.py" <<'PY'
import hashlib, os, random, sys
root, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
d = os.path.join(root, "t%d" % seed)
os.makedirs(d, exist_ok=True)
dfd = os.open(d, os.O_RDONLY)
with open(log, "a") as out:
    for i in range(100000):
        name = os.path.join(d, "f%d" % i)
        data = rnd.randbytes(rnd.choice([100, 4096, 50000, 300000, 1 << 20]))
        with open(name, "wb") as f:
            f.write(data)
            if i % 3:
                f.flush(); os.fsync(f.fileno()); os.fsync(dfd)
                synced = True
            else:
                synced = False
        if synced:
            out.write("%s %s\n" % (hashlib.sha256(data).hexdigest(), name))
            out.flush()
PY

check_synced() { # LOG
    python3 - "$1" <<'PY'
import hashlib, sys
bad = 0
n = 0
for line in open(sys.argv[1]):
    want, name = line.split()
    n += 1
    try:
        got = hashlib.sha256(open(name, "rb").read()).hexdigest()
    except OSError as e:
        got = str(e)
    if got != want:
        bad += 1
        print("lost or changed after the crash:", name, got)
print("checked", n, "synced files")
sys.exit(1 if bad else 0)
PY
}

test_expect_success 'a volume with ext4' '
    "$BUOY" create "$dir/v" --size 2G >/dev/null &&
    buoy_mount first "$dir/v" "$mp" --cache-dir "$cache" --fs ext4 --fs-dir "$fs" 2>/dev/null &&
    "$BUOY" umount "$mp"
'

for ((t = 0; t < TRIALS; t++)); do
    dur=remote
    [ $((t % 2)) -eq 1 ] && dur=local
    test_expect_success "crash $t ($dur): kill -9 while writing; synced files survive; fsck clean" '
        buoy_mount c$t "$dir/v" "$mp" --cache-dir "$cache" --durability $dur \
            --fs ext4 --fs-dir "$fs" &&
        pid=$(buoy_pid "$mp") &&
        : >"$dir/synced.$t" &&
        { python3 "$dir/writer.py" "$fs" "$dir/synced.$t" $t 2>/dev/null & } &&
        wpid=$! &&
        sleep "$(python3 -c "import random; print(random.Random($t).uniform(0.5, 2.5))")" &&
        kill -KILL "$pid" &&
        { wait $wpid 2>/dev/null; true; } &&
        "$BUOY" umount "$mp" 2>"$dir/umount.$t" &&
        not_mounted "$fs" && not_mounted "$mp" && no_loop_on "$mp/disk" &&
        buoy_mount r$t "$dir/v" "$mp" --cache-dir "$cache" --fs ext4 --fs-dir "$fs" &&
        check_synced "$dir/synced.$t" &&
        "$BUOY" umount "$mp" &&
        log_clean r$t &&
        buoy_mount f$t "$dir/v" "$mp" --cache-dir "$cache" --read-only &&
        dev=$(losetup --find --show --read-only "$mp/disk") &&
        { fsck.ext4 -fn "$dev" >"$dir/fsck.$t" 2>&1 || { cat "$dir/fsck.$t"; false; }; } &&
        losetup -d "$dev" &&
        "$BUOY" umount "$mp"
    '
done

test_done
