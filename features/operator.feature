Feature: Operator completeness: free space before and during a migration, legacy parity

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M

  @safety
  Scenario: A migration that would not fit is refused before any change, with both numbers
    Given the cluster has 40M of raw space free
    When I run "xen2kvmDisk -x ldisk -k kdisk"
    Then the command is refused with "does not fit"
    And the refusal names a need larger than the free space
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "xen2kvmDisk: error: migrating ldisk to kdisk does not fit"
    And the refusal names a need larger than the free space
    And volume "kdisk" has no tag "xen"
    And volume "xen-ldisk" does not exist

  @safety
  Scenario: A resync that would not fit is refused before the KVM leg joins
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    And the cluster has 20M of raw space free
    When I run "xen2kvm sync kvmlnx -y"
    Then the command is refused with "the resync of kdisk does not fit"
    And the refusal names a need larger than the free space
    And the raid1 of disk "kdisk" has 1 leg

  @progress
  Scenario: A shrinking margin warns during sync
    Given the space margin is 20%
    And the resync speed is limited to 1024 KiB/s
    And disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    And the cluster has 300M of raw space free
    When I run "xen2kvm sync kvmlnx -y"
    Then the command succeeds without a warning
    When the cluster's free space shrinks to 30M
    And I run "xen2kvm sync kvmlnx -y"
    Then the command succeeds with the warning "under the 20% margin"

  @progress
  Scenario: status --json carries the free space and the projected need
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    And the cluster has 500M of raw space free
    When I run "xen2kvm status --json"
    Then disk "kdisk" needs 3 copies of 32 sectors plus 16M, of 500M free
    When I run "xen2kvm status"
    Then the output contains "space: placement group default:"

  @helper
  Scenario: A prepare started with a helper is finished only with that helper; its output is shown
    Given a helper that fails with "cannot find /etc/fstab"
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command fails with "cannot find /etc/fstab"
    And the output contains "[helper.py] cannot find /etc/fstab"
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "xen2kvmDisk: error: this prepare was started with the helper helper.py"
    Given a helper that writes "CONVERTED" at byte 1024 of its device
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command succeeds
    And volume "xen-ldisk" has tag "helper" = "ok"
    And volume "xen-ldisk" has "CONVERTED" at byte 1024

  @safety
  Scenario: xen2kvmDisk names itself, and its -r flag rebuilds a failed KVM leg
    Given the resync speed is limited to 1024 KiB/s
    And disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -y -m kvmlnx"
    And the resync advances
    And the KVM volume "kdisk" runs out of space
    And the resync advances
    And I run "xen2kvmDisk -y -m kvmlnx"
    Then the command fails with "xen2kvmDisk: error: kvmlnx kdisk: KVM leg 1 failed"
    And the command fails with "then run `xen2kvmDisk -y -m kvmlnx -r`"
    When the KVM volume "kdisk" has room again
    And I run "xen2kvmDisk -y -m kvmlnx -r"
    Then the command succeeds
    And the output contains "rebuilding leg 1 from the start"
    When I run "xen2kvm sync kvmlnx --wait -y"
    Then volume "kdisk" has no tag "xen"
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector 32
