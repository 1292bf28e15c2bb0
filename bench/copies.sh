#!/bin/bash
# bench/copies.sh BYTES CMD...: how many times each payload byte is copied
# while CMD runs (BYTES: the payload bytes of its input), per process name.
#
# In user space: uprobes on glibc's memcpy/memmove and mempcpy (the
# AVX-512 variants this machine's glibc picks; every call counted by its
# length, also glibc's own calls from stdio), summed per process. In the
# kernel: the bytes of every read, write, send and receive of 512 bytes or
# more (strace -f), each one copy. Needs root (perf probe) and perf and
# strace; the probes are removed on exit. Used for DEVELOPERS.md's table:
#
#   bash bench/copies.sh 268435456 build/bin/zpipe run --plugin echo \
#       --workers 2 --input IN --output OUT --format lines --no-progress
set -euo pipefail
bytes=$1
shift
libc=$(ldd /bin/true | awk '/libc.so/ {print $3}')
tmp=$(mktemp -d)
cleanup() {
    perf probe -q -d 'probe_libc:*' 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
for f in __memmove_avx512_unaligned_erms __mempcpy_avx512_unaligned_erms; do
    perf probe -q -x "$libc" --add "$f len=%dx:u64"
done
perf record -q -e 'probe_libc:*' -o "$tmp/perf.data" -- "$@" \
    >/dev/null 2>&1 </dev/null
perf script -i "$tmp/perf.data" -F comm,trace 2>/dev/null | awk -v B="$bytes" '
    { for (i = 1; i <= NF; i++) if ($i ~ /^len=/) { split($i, a, "=");
          s[$1] += a[2]; t += a[2] } }
    END { for (c in s) printf "  user   %-16s %.2f\n", c, s[c] / B;
          printf "  user   total            %.2f\n", t / B }'
strace -f -qq -o "$tmp/strace" -e trace=read,write,readv,writev,pread64,pwrite64,preadv,pwritev,recvfrom,sendto,recvmsg,sendmsg \
    "$@" >/dev/null 2>&1 </dev/null
awk -v B="$bytes" '{ if (match($0, /= [0-9]+$/)) { n = substr($0, RSTART + 2) + 0;
        if (n >= 512) t += n } }
    END { printf "  kernel total            %.2f\n", t / B }' "$tmp/strace"
