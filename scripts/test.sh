#!/usr/bin/env bash
# Set up everything the tests need and run them all: lint, the fast suite with coverage, and
# (when the machine can) the suites of the other markers. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# fdisk: sfdisk checks of the MBR; debootstrap: a real Debian guest tree; openssh: the fleet
# tests' sshd hosts; the rest: the kernel lab (user-mode-linux guest). Boot proof (marker
# `boot`): QEMU with SeaBIOS boots the migrated disks; grub-mkimage builds a guest's GRUB 2.
APT_PACKAGES=(fdisk user-mode-linux kmod dmsetup util-linux e2fsprogs iproute2 debootstrap
              openssh-server openssh-client qemu-system-x86 seabios grub-common grub-pc-bin
              tmux)  # tmux: the live view test (tests/operator)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # best effort: with Debian's vagrant the Vagrantfile of the laptop lab gets validated
    command -v vagrant >/dev/null || DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends vagrant >/dev/null 2>&1 || true
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
start=$(date +%s)
# The boot proofs are QEMU (TCG) and user-mode-linux runs: one CPU each, minutes of waiting for
# a guest. They run beside the other suites, on the second core, and are reported at the end.
boot_log=$(mktemp)
echo "== pytest -m boot (QEMU boots migrated disks) in the background"
.venv/bin/pytest tests -m boot "$@" >"$boot_log" 2>&1 &
boot_pid=$!
trap 'kill "$boot_pid" 2>/dev/null || true' EXIT
echo "== pytest (fake backend) with coverage"
.venv/bin/coverage erase
# `pytest`, not `python -m pytest`: the latter puts the checkout on sys.path (see tests/unit).
.venv/bin/coverage run .venv/bin/pytest tests -m "not boot" "$@"
.venv/bin/coverage report --fail-under=90 --include='xen2kvm/*,backends/fake/*'
echo "== fast suite done in $(( $(date +%s) - start )) s"

if [ "$(id -u)" = 0 ] && { [ -d /sys/module/dm_mod ] || [ -x /usr/bin/linux.uml ]; }; then
    # Two shards, each in its own user-mode-linux guest (one CPU each): the boots are done or
    # nearly so by now, so the second core would otherwise sit idle for the longest suite.
    echo "== pytest --backend lab (the same features on a real kernel, user-mode-linux, 2 shards)"
    lab_start=$(date +%s)
    lab_log=$(mktemp)
    .venv/bin/pytest tests --backend lab --shard 2/2 "$@" >"$lab_log" 2>&1 &
    lab_pid=$!
    trap 'kill "$boot_pid" "$lab_pid" 2>/dev/null || true' EXIT
    lab_rc=0
    .venv/bin/pytest tests --backend lab --shard 1/2 "$@" || lab_rc=$?
    lab2_rc=0
    wait "$lab_pid" || lab2_rc=$?
    echo "== kernel lab, shard 2/2:"
    cat "$lab_log"
    rm -f "$lab_log"
    echo "== kernel lab took $(( $(date +%s) - lab_start )) s (shards: exit $lab_rc, $lab2_rc)"
    for rc in "$lab_rc" "$lab2_rc"; do
        if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then exit "$rc"; fi
    done
else
    echo "== SKIPPED the kernel lab: needs root and Debian's user-mode-linux package"
fi
echo "== the boot proofs (started at the beginning)"
boot_rc=0
wait "$boot_pid" || boot_rc=$?
trap - EXIT
cat "$boot_log"
rm -f "$boot_log"
# pytest's exit 5 is "no test selected" (-k filters): not a failure of the boots
if [ "$boot_rc" != 0 ] && [ "$boot_rc" != 5 ]; then
    echo "== the boot proofs FAILED (exit $boot_rc)"
    exit "$boot_rc"
fi
echo "== boot proofs done at $(( $(date +%s) - start )) s"
if command -v vagrant >/dev/null; then
    echo "== vagrant validate"
    (cd vagrant && VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider)
fi
echo "== all done in $(( $(date +%s) - start )) s"
