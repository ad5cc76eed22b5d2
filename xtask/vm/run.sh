#!/bin/sh
# Runs inside a test guest (cargo xtask vm-test), from the host's share on /mnt:
# each line of /mnt/tests is `NAME BINARY TEST-FILTER ENV...` (ENV `-` for none);
# results go to /mnt/res (one log per test, and `results`: NAME RC SECONDS).
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export NETDROP_BIN=/mnt/bin/netdrop RUST_BACKTRACE=1 NO_COLOR=1
# Every kernel of the matrix must take drops through the raw tracepoint.
export NETDROP_EXPECT_HOOKS=raw_tracepoint:kfree_skb
R=/mnt/res
mkdir -p $R
# The test binaries name their helpers by host path (env!("CARGO_BIN_EXE_...")).
while read -r host share; do
  mkdir -p "$(dirname "$host")"; ln -sf "/mnt/$share" "$host"
done < /mnt/paths
uname -r > $R/uname
cat /sys/kernel/tracing/events/skb/kfree_skb/format > $R/kfree_skb.format 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
TIMEOUT=$(cat /mnt/timeout)
while read -r name bin filter extra; do
  [ "$extra" = "-" ] && extra=""
  t0=$(up)
  echo "VM-TEST-START $name"
  # shellcheck disable=SC2086
  env $extra timeout "$TIMEOUT" "/mnt/bin/$bin" --exact "$filter" --test-threads=1 --nocapture > "$R/$name.log" 2>&1
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')
  grep -q "test result: ok. 1 passed" "$R/$name.log" || { [ $rc -eq 0 ] && rc=99; }
  echo "$name $rc $secs" >> $R/results
  echo "VM-TEST $name rc=$rc ${secs}s"
  ip -all netns delete 2>/dev/null
done < /mnt/tests
dmesg > $R/dmesg.txt
