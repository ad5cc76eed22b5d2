#!/usr/bin/env bash
# Installs what netdrop needs to build and test, on a Debian (bookworm) machine.
# Idempotent: when everything is there it checks and returns in well under a second.
#
# What and why:
#   rustc-web, libstd-rust-web-dev-bpf  Debian's Rust 1.96 with a PREBUILT core for
#                                       bpfel-unknown-none (no rust-src / build-std needed)
#   llvm-22-dev, libpolly-22-dev        to build bpf-linker against the LLVM rustc 1.96 uses
#   bpf-linker (crates.io)              links the eBPF object
#   iproute2, bpftool, util-linux       the tests: namespaces, veth, sysctls, "no program left"
#   iputils-ping                        the tests: ping provokes neighbour resolution and rp_filter drops
#   tshark                              the tests: recorded pcapng files open in Wireshark
#   nftables, iptables                  the tests: firewall_rule and conntrack_full reproductions
#                                       (nft rules, iptables-nft rules, a conntrack-activating rule)
#   prometheus (promtool)               tests/serve.rs: a real Prometheus scrapes netdrop serve; tests/deploy.rs:
#                                       checks and unit-tests deploy/prometheus, and the
#                                       dashboard's expressions
#   podman, runc                        tests/deploy.rs and `cargo xtask image`: the container image, built
#                                       FROM scratch (no registry) and run with runc + cgroupfs (hybrid cgroups);
#                                       tests/pods.rs: a real container whose drops netdrop names
#                                       (runc: crun refuses hybrid cgroups)
#   python3-venv, kubernetes-validate   tests/deploy.rs: deploy/kubernetes against the Kubernetes schemas
#     (PyPI, in /var/lib/netdrop-setup/venv)
#   man-db, groff-base, zsh, fish       tests/cli.rs: the generated man pages render without warnings
#                                       (man -l), the completion scripts parse (bash -n, zsh -n, fish -n);
#                                       zsh and fish are small (~7 MB), the man tools come with Debian
#   tmux                                tests/screen.rs: netdrop's live screen driven in a real terminal
#                                       (80x24 panes, keys sent, the screen captured as text)
#   xz-utils, zstd                      the kernel matrix: unpacking guest kernel modules
#   bpftrace                            the benchmark (cargo xtask bench): the bpftrace row,
#                                       netdrop's cost per drop against a general-purpose tracer
#   qemu-system-x86, busybox-static     the kernel matrix (cargo xtask vm-test): Debian kernels
#                                       5.10/6.1/6.12/7.2 booted under QEMU. On bookworm they come
#                                       from bookworm-backports through a private apt config
#                                       (bookworm's own qemu-system-x86 would remove the newer
#                                       qemu-utils many machines have); /etc/apt is not changed.
#
# On a machine with internet access to the Rust distribution server the standard
# aya route works too: `rustup toolchain install nightly --component rust-src` and
# `cargo install bpf-linker`; netdrop's build picks whichever is installed.
set -euo pipefail

BPF_LINKER_VERSION=0.13.0
PKGS=(rustc-web cargo-web libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev iproute2 iputils-ping bpftool util-linux procps tshark g++ bpftrace xz-utils zstd nftables iptables prometheus podman runc python3-venv man-db groff-base zsh fish tmux)

say() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust with rustup (https://rustup.rs) first"
  exit 1
fi

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
else
  say "not a Debian machine: install a nightly toolchain with rust-src, iproute2 and bpftool yourself"
fi

# The kernel matrix's emulator and guest shell.
if command -v dpkg >/dev/null 2>&1 && ! { dpkg -s qemu-system-x86 >/dev/null 2>&1 && dpkg -s busybox-static >/dev/null 2>&1; }; then
  codename=$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ]; then
    say "installing qemu-system-x86 and busybox-static from bookworm-backports"
    mirror=$(grep -rhoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 || true)
    mirror=${mirror%/}; mirror=${mirror:-http://deb.debian.org/debian}
    apt_dir=/var/lib/netdrop-setup/apt-bpo
    as_root mkdir -p "$apt_dir/lists/partial"
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-backports main\n' "$mirror" "$mirror" "$mirror" \
      | as_root tee "$apt_dir/sources.list" >/dev/null
    apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$apt_dir/lists")
    as_root apt-get "${apt_opts[@]}" update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -q --no-install-recommends \
      -t bookworm-backports qemu-system-x86 busybox-static >&2
  else
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 busybox-static >&2
  fi
fi

if ! bpf-linker --version >/dev/null 2>&1; then
  say "installing bpf-linker $BPF_LINKER_VERSION"
  if [ -d /usr/lib/llvm-22 ]; then
    PATH=/usr/lib/llvm-22/bin:$PATH LLVM_PREFIX=/usr/lib/llvm-22 \
      cargo install --locked bpf-linker --version "$BPF_LINKER_VERSION" --no-default-features --features llvm-22 >&2
  else
    cargo install --locked bpf-linker --version "$BPF_LINKER_VERSION" >&2
  fi
fi
# kubernetes-validate (it bundles the Kubernetes schemas) in a venv of its own.
VENV=/var/lib/netdrop-setup/venv
PY=$(command -v /usr/bin/python3 || command -v python3 || true)
if [ -n "$PY" ] && ! "$VENV/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  say "installing kubernetes-validate in $VENV"
  as_root mkdir -p "$(dirname "$VENV")"
  as_root "$PY" -m venv "$VENV"
  as_root "$VENV/bin/pip" install -q kubernetes-validate >&2
fi
say "ready"
