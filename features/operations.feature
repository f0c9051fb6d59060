Feature: Operating a migration: progress, helper, in-place, cleanup scoping, tuning

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M

  @progress
  Scenario: Each repeated -m prints progress until every disk is in sync, then retags
    Given the resync speed is limited to 1024 KiB/s
    And disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -m kvmlnx"
    Then the output contains "dmsetup reload xen2kvm-kvmlnx-kdisk <<'EOF'"
    And the output contains "0 32800 raid raid1 3 0 rebuild 1 2 /dev/storpool/x2km0-kdisk /dev/mapper/xen2kvm-kvmlnx-kdisk-lin /dev/storpool/x2km1-kdisk /dev/storpool/kdisk"
    And nothing changed
    When I run "xen2kvmDisk -y -m kvmlnx"
    Then the output contains "adding /dev/storpool/kdisk as leg 1"
    And the raid1 table of disk "kdisk" contains "rebuild 1 2 /dev/storpool/x2km0-kdisk /dev/mapper/xen2kvm-kvmlnx-kdisk-lin /dev/storpool/x2km1-kdisk /dev/storpool/kdisk"
    When the resync advances
    And I run "xen2kvmDisk -m kvmlnx"
    Then the output shows progress of disk "kdisk"
    And nothing changed
    When the resync advances
    And I run "xen2kvmDisk -y -m kvmlnx"
    Then the output shows more progress of disk "kdisk"
    And volume "kdisk" has tag "xen" = "xen-ldisk"
    When the resync of disk "kdisk" finishes
    And I run "xen2kvmDisk -y -m kvmlnx"
    Then the output contains "every disk is in sync"
    And volume "kdisk" has no tag "xen"

  @helper
  Scenario: The helper runs on the clone's block device before the first boot
    Given a helper that writes "CONVERTED" at byte 1024 of its device
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command succeeds
    And volume "xen-ldisk" has "CONVERTED" at byte 1024
    And volume "ldisk" does not have "CONVERTED" at byte 1024
    When VM "kvmlnx" is powered on
    And I run "xen2kvm sync kvmlnx --wait -y"
    Then volume "kdisk" has "CONVERTED" at byte 17408

  @helper
  Scenario: A failing helper stops the prepare and a rerun finishes it
    Given a helper that fails with "cannot find /etc/fstab"
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command fails with "cannot find /etc/fstab"
    And volume "kdisk" has no tag "xen"
    Given a helper that writes "CONVERTED" at byte 1024 of its device
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command succeeds
    And volume "kdisk" has tag "xen" = "xen-ldisk"
    And volume "xen-ldisk" has "CONVERTED" at byte 1024

  @inplace
  Scenario: In-place mode: the XEN disk is both source and target
    Given VM "lnx1" is moved to a KVM hypervisor
    When I run "xen2kvmDisk -y -x ldisk -k ldisk"
    Then the command succeeds
    And volume "xen-ldisk" holds the XEN data of "ldisk" plus every guest write from offset 0
    And volume "ldisk" has one Linux partition starting at sector 32 holding 32768 sectors
    When VM "lnx1" is powered on
    And the guest of VM "lnx1" writes 4096 bytes at partition offset 64K of disk "ldisk" with seed 5
    And I run "xen2kvm sync lnx1 --wait -y"
    Then volume "ldisk" has no tag "xen"
    And volume "xen-ldisk" has tag "vs" = "lnx1"
    When VM "lnx1" is powered off
    And I run "xen2kvmDisk -y -z -m lnx1"
    Then volume "xen-ldisk" does not exist
    And volume "ldisk" exists
    And volume "ldisk" holds the XEN data of "ldisk" plus every guest write from sector 32

  @cleanup
  Scenario: -z -m VM deletes only that VM's clones; -z deletes every tagged clone
    Given a XEN VM "lnx9" with disk "ldisk9" of 8M
    And a KVM VM "kvm9" with disk "kdisk9" of 8M
    And disk "ldisk" is migrated to "kdisk" of VM "kvmlnx"
    And disk "ldisk9" is migrated to "kdisk9" of VM "kvm9"
    When I run "xen2kvmDisk -y -z -m kvm9"
    Then volume "xen-ldisk9" does not exist
    And volume "xen-ldisk" exists
    When I run "xen2kvmDisk -z"
    Then the output contains "storpool -B volume xen-ldisk delete xen-ldisk"
    And nothing changed
    When I run "xen2kvmDisk -y -z"
    Then volume "xen-ldisk" does not exist
    And volume "kdisk" exists
    And volume "kdisk9" exists

  @tuning
  Scenario: Global and per-array resync speed
    When I run "xen2kvm tune --max 1024"
    Then nothing changed
    When I run "xen2kvm tune --max 1024 -y"
    Then the host's "dev.raid.speed_limit_max" is 1024
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvm sync kvmlnx --max-rate 512 -y"
    Then the raid1 table of disk "kdisk" contains "max_recovery_rate 512"
    And the resync of disk "kdisk" copies at most 512 KiB per second
    When I run "xen2kvm tune --reset -y"
    Then the host's "dev.raid.speed_limit_max" is 200000
