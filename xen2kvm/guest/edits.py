"""Pure text changes a XEN PV guest needs to boot under KVM with virtio disks (what virt-v2v's
convert_linux does). Each takes the old text and returns the new one; running one
on its own output changes nothing, so a second run of the helper is a no-op."""

from __future__ import annotations

import re
from typing import Optional

XEN_DISK = re.compile(r"/dev/(?:xvd|sd|hd)([a-z])(\d*)\b")
XEN_CONSOLE = re.compile(r"\b(hvc0|xvc0)\b")
SERIAL = "ttyS0"


def _disk(m: re.Match) -> str:
    return f"/dev/vd{m.group(1)}{m.group(2)}"


def fstab(text: str, root_spec: str) -> str:
    """The root line names the filesystem by UUID/LABEL (or /dev/vda1); other XEN names -> vdX."""
    out = []
    for line in text.splitlines(keepends=True):
        w = line.split()
        if len(w) >= 2 and not w[0].startswith("#"):
            if w[1] == "/" and XEN_DISK.fullmatch(w[0]):
                line = line.replace(w[0], root_spec, 1)
            else:
                line = XEN_DISK.sub(_disk, line)
        out.append(line)
    return "".join(out)


def kernel_args(args: str, root_spec: str) -> str:
    """root= and console= of one kernel command line."""
    args = re.sub(r"\broot=/dev/(?:xvd|sd|hd)[a-z]\d*\b", f"root={root_spec}", args)
    args = XEN_DISK.sub(_disk, args)
    if re.search(r"\bconsole=(hvc0|xvc0)\b", args):
        args = re.sub(r"\s*\bconsole=(?:hvc0|xvc0)\S*", "", args)
        args = args.rstrip() + f" console=tty1 console={SERIAL},115200"
    return args


def grub_legacy(text: str, root_spec: str) -> tuple[str, Optional[str]]:
    """menu.lst / grub.conf: kernel lines, and `default` moved to a non-Xen kernel.
    Returns the text and a warning when only Xen kernels are installed."""
    lines = text.splitlines(keepends=True)
    entries, xen = [], []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("title"):
            entries.append(i)
            xen.append(False)
        elif s.startswith("kernel") and entries:
            head, _, args = line.partition(s.split()[1])
            xen[-1] = xen[-1] or "xen" in s.split()[1].lower()
            lines[i] = head + s.split()[1] + kernel_args(args.rstrip("\n"), root_spec) + "\n"
    warning = None
    if entries:
        plain = [n for n, is_xen in enumerate(xen) if not is_xen]
        if plain:
            for i, line in enumerate(lines):
                m = re.match(r"(\s*default\s*=?\s*)(\d+)", line)
                if m and xen[min(int(m.group(2)), len(xen) - 1)]:
                    lines[i] = f"{m.group(1)}{plain[0]}\n"
        else:
            warning = ("only Xen kernels are installed: install a non-Xen kernel in the guest "
                       "before the migration (CentOS 5: yum install kernel) and rerun")
    return "".join(lines), warning


def grub2_default(text: str, root_spec: str) -> str:
    """/etc/default/grub: GRUB_CMDLINE_LINUX*, and a serial terminal."""
    def fix(m: re.Match) -> str:
        return f'{m.group(1)}"{kernel_args(m.group(2), root_spec).strip()}"'

    text = re.sub(r'^(GRUB_CMDLINE_LINUX(?:_DEFAULT)?=)"([^"]*)"', fix, text, flags=re.M)
    if "GRUB_TERMINAL" not in text and SERIAL in text:
        text += 'GRUB_TERMINAL="console serial"\n'
    return text


def grub2_cfg(text: str, root_spec: str) -> str:
    """grub.cfg (generated, but what boots until grub-mkconfig runs in the guest)."""
    return re.sub(r"^(\s*linux(?:16)?\s+\S+)(.*)$",
                  lambda m: m.group(1) + kernel_args(m.group(2), root_spec), text, flags=re.M)


def inittab(text: str) -> str:
    return re.sub(r"^(\w+:\d*:respawn:\S*getty\S*\s+)(?:hvc0|xvc0)(\s+)\d+",
                  rf"\g<1>{SERIAL}\g<2>115200", text, flags=re.M)


def console_names(text: str) -> str:
    """upstart job bodies and the like: hvc0/xvc0 -> ttyS0."""
    return XEN_CONSOLE.sub(SERIAL, text)


def securetty(text: str) -> str:
    names = [line.strip() for line in text.splitlines()]
    out = [SERIAL if n in ("hvc0", "xvc0") else n for n in names]
    for needed in (SERIAL, "tty1"):
        if needed not in out:
            out.append(needed)
    deduped = list(dict.fromkeys(out))
    return "\n".join(deduped) + "\n"


def modprobe(text: str) -> str:
    text = re.sub(r"\bxenblk\b", "virtio_blk", text)
    return re.sub(r"\bxennet\b", "virtio_net", text)


def initramfs_modules(text: str) -> str:
    """Debian's /etc/initramfs-tools/modules: the virtio drivers for the next initrd."""
    have = {line.strip() for line in text.splitlines()}
    add = [m for m in ("virtio_pci", "virtio_blk", "virtio_net") if m not in have]
    if not add:
        return text
    return text + ("" if text.endswith("\n") or not text else "\n") + "\n".join(add) + "\n"
