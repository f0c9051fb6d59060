"""`xen2kvm-guest`: make a XEN PV guest's root filesystem boot under KVM with virtio."""
