@safety @guards
Feature: Guards: refusals a typo cannot pass, no interleaving on one host or across hosts, the XEN side stays quiet (issue 10)

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M

  Scenario: 1. A rerun of prepare after the migration finished is refused and changes nothing
    Given disk "ldisk" is migrated to "kdisk" of VM "kvmlnx"
    When I run "xen2kvmDisk -y -z -m kvmlnx"
    And VM "kvmlnx" is powered on
    And the guest of VM "kvmlnx" writes 8192 bytes at partition offset 4096 of disk "kdisk" with seed 5
    And VM "kvmlnx" is powered off
    And the content of every volume is recorded
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "ldisk was already migrated (tagged vs=kvmlnx)"
    And the error says "nothing to do"
    And every volume holds its recorded content
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector 32

  Scenario: 2. Swapped -x and -k: the XEN disk holds a bare filesystem and is never grown or partitioned
    Given disk "ldisk" holds a bare ext4 filesystem
    And the content of every volume is recorded
    When I run "xen2kvmDisk -y -x kdisk -k ldisk"
    Then the command is refused with "holds a bare ext2/3/4 filesystem, as a XEN disk does: are -x and -k swapped?"
    And every volume holds its recorded content
    And volume "xen-kdisk" does not exist
    When I run "xen2kvmDisk -y -x kdisk -k ldisk -b"
    Then the command is refused with "are -x and -k swapped?"
    And every volume holds its recorded content
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command succeeds

  Scenario: 2. A volume of another migration is refused (a typo in -k)
    Given a volume "kother" of 16M
    And I run "xen2kvmDisk -y -x ldisk -k kdisk"
    And the content of every volume is recorded
    When I run "xen2kvmDisk -y -x kdisk -k kother"
    Then the command is refused with "kdisk belongs to another migration (xen=xen-ldisk); check -x and -k"
    And every volume holds its recorded content

  Scenario: 4. A rerun racing another rerun on one host after a crash grows the KVM volume once
    Given "xen2kvmDisk -y -x ldisk -k kdisk" crashed before its step GrowVolume
    And the content of every volume is recorded
    When "xen2kvmDisk -y -x ldisk -k kdisk" runs while another "xen2kvmDisk -y -x ldisk -k kdisk" waits between its plan and its lock
    Then both commands succeed
    And the later one says "already prepared"
    And volume "kdisk" is 16M plus 32 sectors
    And volume "kdisk" has one Linux partition starting at sector 32 holding 32768 sectors
    And volume "ldisk" holds its recorded content
    And no volume carries a claim

  Scenario: 4. Two case-1 runs racing on one host leave no stale tag on the new KVM volume
    Given the content of every volume is recorded
    When "xen2kvmDisk -y -x ldisk -k kdisk -b" runs while another "xen2kvmDisk -y -x ldisk -k kdisk -b" waits between its plan and its lock
    Then both commands succeed
    And the later one says "already replaced"
    And volume "kdisk" holds the same bytes as volume "ldisk"
    And volume "kdisk" has no tag "xen2kvm"
    And volume "x2kold-kdisk" has tag "xen2kvm" = "replaced"
    And volume "x2kold-kdisk" holds the recorded content of "kdisk"

  Scenario: 5. The same prepare from two hosts: the second controller refuses, naming the holder
    Given the content of every volume is recorded
    When "xen2kvmDisk -y -x ldisk -k kdisk" on host "kvm2" runs while another "xen2kvmDisk -y -x ldisk -k kdisk" holds its claims
    Then the interleaved command is refused with "is claimed by another xen2kvm run" and "host kvm1"
    And the later one succeeds
    And volume "kdisk" is 16M plus 32 sectors
    And volume "ldisk" holds its recorded content
    And no volume carries a claim

  Scenario: 5. A crashed run's claim is shown by status and taken over only when asked
    Given a run on host "kvm2" that died left its claim on volume "kdisk"
    And the content of every volume is recorded
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "is claimed by another xen2kvm run"
    And the error says "rerun with --take-over"
    And every volume holds its recorded content
    When I run "xen2kvm status"
    Then the output contains "claimed by kvm2."
    When I run "xen2kvmDisk -y -x ldisk -k kdisk --take-over"
    Then the command succeeds
    And volume "kdisk" is 16M plus 32 sectors
    And no volume carries a claim

  Scenario: 6. The XEN VM powered on again after prepare: assemble refuses, verify finds its writes
    Given I run "xen2kvmDisk -y -x ldisk -k kdisk"
    And VM "lnx1" is powered on
    And the XEN guest of VM "lnx1" writes 4096 bytes at offset 64K of disk "ldisk" with seed 11
    When I run "xen2kvm assemble kvmlnx --disk kdisk -y"
    Then the command is refused with "the XEN VM must stay off after prepare; power it off"
    When I run "xen2kvm verify -x ldisk -k kdisk -y"
    Then the command is refused with "is attached to"
    When VM "lnx1" is powered off
    And I run "xen2kvm verify -x ldisk -k kdisk -y"
    Then the command fails with exit code 5 and "the XEN volume ldisk changed after prepare"

  Scenario: 6. Sync and retag refuse while the XEN volume is attached
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    And VM "lnx1" is powered on
    When I run "xen2kvmDisk -y -m kvmlnx"
    Then the command is refused with "the XEN VM must stay off after prepare"
    And volume "kdisk" has tag "xen" = "xen-ldisk"

  Scenario: 13. verify runs under the host lock and attaches only with -y, putting back what it found
    Given disk "ldisk" is migrated to "kdisk" of VM "kvmlnx"
    When I run "xen2kvm verify -x ldisk -k kdisk"
    Then the command is refused with "verify must attach"
    And the error says "add -y"
    When I run "xen2kvm verify -x ldisk -k kdisk -y"
    Then the command succeeds
    And the output contains "verify OK"
    And nothing changed
    Given another xen2kvm run holds the host lock
    When I run "xen2kvm verify -x ldisk -k kdisk -y"
    Then the command is refused with "another xen2kvm run holds"

  @fakeonly
  Scenario Outline: 9. The fake cluster's state folder cannot be read or written: one line, nothing changed (the lab has no state folder)
    Given the fake cluster's state <damage>
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command fails with exit code <code> and "<message>"
    And the fake cluster's state is still <damage>

    Examples:
      | damage                 | code | message                                   |
      | file is truncated      | 4    | is unreadable (truncated or damaged)      |
      | file is empty          | 4    | is unreadable (empty); restore it         |
      | file is a directory    | 4    | is unreadable (Is a directory); restore it |
      | folder is a plain file | 2    | is not a folder; give --state a folder    |
