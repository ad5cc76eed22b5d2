#!/bin/sh
# Runs inside a test guest (cargo xtask vm-test --syn-bench), from the host's
# share on /mnt: nd-synbench once (SYN flood rate with no tracer, an empty
# fentry program, netdrop fentry, netdrop kprobe); its stdout goes to
# /mnt/res/synbench.out, its stderr to /mnt/res/synbench.log.
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export NETDROP_BIN=/mnt/bin/netdrop RUST_BACKTRACE=1 NO_COLOR=1
R=/mnt/res
mkdir -p $R
uname -r > $R/uname
echo "VM-TEST-START synbench"
# shellcheck disable=SC2046
timeout "$(cat /mnt/timeout)" /mnt/bin/nd-synbench $(cat /mnt/args) > $R/synbench.out 2> $R/synbench.log
rc=$?
echo "synbench $rc" > $R/results
echo "VM-TEST synbench rc=$rc"
tail -n 5 $R/synbench.log | sed 's/^/VM-LOG /'
ip -all netns delete 2>/dev/null
dmesg > $R/dmesg.txt
