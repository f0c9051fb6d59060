"""xen2kvm: move OnApp VM disks from XEN to KVM on StorPool storage, at the storage layer."""

import logging

# quiet unless the command line asks for -v: stderr carries one line per error, nothing else
logging.getLogger("xen2kvm").addHandler(logging.NullHandler())

__version__ = "0.1.0"
