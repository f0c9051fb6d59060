@case1
Feature: Case-1, same disk layout (Windows, FreeBSD)
  The KVM VM's volume is replaced by a copy-on-write clone of the XEN volume, offline.

  Background:
    Given a XEN VM "win1" with disk "wdisk" of 16M
    And a KVM VM "kvmwin" with disk "kwdisk" of 16M

  Scenario: Dry-run prints the storpool commands and changes nothing
    When I run "xen2kvmDisk -x wdisk -k kwdisk -b"
    Then the command succeeds
    And the output contains "storpool volume kwdisk update rename x2kold-kwdisk"
    And the output contains "storpool volume kwdisk baseOn wdisk tag x2kclaim."
    And nothing changed

  Scenario: The KVM volume becomes a clone of the XEN volume and the old one is kept until cleanup
    When I run "xen2kvmDisk -y -x wdisk -k kwdisk -b"
    Then the command succeeds
    And volume "kwdisk" holds the same bytes as volume "wdisk"
    And volume "x2kold-kwdisk" has tag "xen2kvm" = "replaced"
    When VM "kvmwin" is powered on
    And the guest of VM "kvmwin" writes 4096 bytes at offset 8192 of disk "kwdisk" with seed 7
    And VM "kvmwin" is powered off
    Then volume "kwdisk" holds the XEN data of "wdisk" plus every guest write from offset 0
    When I run "xen2kvmDisk -y -x wdisk -k kwdisk -b"
    Then the command succeeds
    And the output contains "already replaced"
    And nothing changed
    When I run "xen2kvmDisk -y -z"
    Then the command succeeds
    And volume "x2kold-kwdisk" does not exist
    And volume "kwdisk" exists
