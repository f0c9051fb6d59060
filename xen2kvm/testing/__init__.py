"""Test and rehearsal tooling, shipped beside the product but never imported by it (as
`fabric.testing` sits beside Fabric): the StorPool API emulator (`emulator`, the
`xen2kvm-storpool-emulator` command), the kernel-lab runner (`lab`, `xen2kvm-lab`) and real sshd
instances on loopback (`sshd`). They need nothing beyond the product's own dependencies; a test
(tests/unit/test_packaging.py) keeps every other module of the package from importing them.
"""
