@safety
Feature: Refusals: a one-line error, a non-zero exit, and nothing changed (docs/architecture.md §5)

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M

  Scenario Outline: Bad identifiers and missing or ambiguous volumes
    Given volumes "<extra>" of 16M each
    When I run "<command>"
    Then the command is refused with "<message>"

    Examples:
      | extra    | command                                | message                        |
      | spare    | xen2kvmDisk -y -x bad/name -k kdisk    | is not a valid StorPool name   |
      | spare    | xen2kvmDisk -y -x ldisk -k nosuch      | no StorPool volume named       |
      | a:dd,b:dd | xen2kvmDisk -y -x dd -k kdisk         | is ambiguous                   |
      | spare    | xen2kvmDisk -y -m bad-vm               | is not valid                   |
      | spare    | xen2kvmDisk -y -k kdisk                | give -x XEN -k KVM             |
      | spare    | xen2kvmDisk -y -x ldisk -k kdisk -b -c | takes no -c or -p              |

  Scenario: The XEN disk is larger than the KVM disk's room
    Given a volume "big" of 32M
    When I run "xen2kvmDisk -y -x big -k kdisk"
    Then the command is refused with "larger than the KVM disk's room"
    When I run "xen2kvmDisk -y -x big -k kdisk -b"
    Then the command is refused with "larger than the KVM disk's room"

  Scenario: A volume the step must modify is attached (the VM is not powered off)
    Given VM "lnx1" is powered on
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "attached to"
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -b"
    Then the command is refused with "attached to"

  Scenario: A migration is already in progress for the disk: prepare again is a no-op, case-1 is refused
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command succeeds
    And the output contains "already prepared"
    And nothing changed
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -b"
    Then the command is refused with "in progress"

  Scenario: A size changed during the migration
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    And volume "kdisk" is grown by 1M behind the tool's back
    When I run "xen2kvm assemble kvmlnx --disk kdisk -y"
    Then the command is refused with "changed during the migration"

  @fakeonly
  Scenario: A dm-raid target that cannot do a safe rebuild is refused by name and version
    Given the host's dm raid target reports version 1.12.1
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    And I run "xen2kvm assemble kvmlnx --disk kdisk -y"
    Then the command is refused with "dm raid target v1.12.1 cannot prove a safe rebuild"

  Scenario: Leg 1 joins only with rebuild 1 or with metadata that records the copy
    Given the resync speed is limited to 1024 KiB/s
    And disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -y -m kvmlnx"
    Then the raid1 table of disk "kdisk" contains "rebuild 1"
    When the resync advances
    And VM "kvmlnx" is powered off
    And VM "kvmlnx" is powered on
    Then the raid1 of disk "kdisk" has 2 legs and resumed above 0
    And the raid1 table of disk "kdisk" does not contain "rebuild"
    When VM "kvmlnx" is powered off
    And the metadata of leg 1 of disk "kdisk" is wiped
    And VM "kvmlnx" is powered on
    Then the raid1 of disk "kdisk" has 1 leg
    When I run "xen2kvm sync kvmlnx --wait -y"
    Then the command succeeds
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector 32

  Scenario: A failed KVM leg is reported, never retagged, and repaired after making room
    Given the resync speed is limited to 1024 KiB/s
    And disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -y -m kvmlnx"
    And the resync advances
    And the KVM volume "kdisk" runs out of space
    And the resync advances
    And I run "xen2kvmDisk -y -m kvmlnx"
    Then the command fails with "leg 1 failed"
    And volume "kdisk" has tag "xen" = "xen-ldisk"
    When I run "xen2kvm status"
    Then the output contains "leg 1 failed"
    When the guest of VM "kvmlnx" writes 4096 bytes at partition offset 4096 of disk "kdisk" with seed 9
    And the KVM volume "kdisk" has room again
    And I run "xen2kvm sync kvmlnx --repair -y"
    And I run "xen2kvm sync kvmlnx --wait -y"
    Then the command succeeds
    And volume "kdisk" has no tag "xen"
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector 32

  Scenario: Cleanup deletes only migrated clones that are detached and unused
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvmDisk -y -z -m kvmlnx"
    Then the command succeeds
    And volume "xen-ldisk" exists
    When I run "xen2kvm sync kvmlnx --wait -y"
    And I run "xen2kvmDisk -y -z -m kvmlnx"
    Then the command is refused with "attached to"
    And volume "kdisk" exists

  @inplace
  Scenario: In-place mode refuses a clone it did not make before touching the original
    Given VM "lnx1" is moved to a KVM hypervisor
    And a volume "xen-ldisk" of 16M
    When I run "xen2kvmDisk -y -x ldisk -k ldisk"
    Then the command is refused with "is not this tool's clone"

  Scenario: Two runs never interleave
    Given another xen2kvm run holds the host lock
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "another xen2kvm run holds"
