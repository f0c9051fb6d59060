"""xen2kvm: move OnApp VM disks from XEN to KVM on StorPool, at the storage layer."""

__version__ = "0.1.0"
