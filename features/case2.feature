@case2
Feature: Case-2, raw XEN filesystem to a partitioned KVM disk, copied while the VM runs

  Scenario Outline: From prepare through cleanup with guest writes before, during and after the resync (N=<n>)
    Given a XEN VM "lnx1" with disk "ldisk" of 24M
    And a KVM VM "kvmlnx" with disk "kdisk" of 24M
    And the resync speed is limited to 2048 KiB/s
    When I run "xen2kvmDisk -x ldisk -k kdisk <flags>"
    Then the command succeeds
    And the output contains "start=<n>, size=49152, type=83"
    And nothing changed
    When I run "xen2kvmDisk -y -x ldisk -k kdisk <flags>"
    Then the command succeeds
    And volume "kdisk" is 24M plus <n> sectors
    And volume "kdisk" has one Linux partition starting at sector <n> holding 49152 sectors
    And volume "kdisk" has tag "xen" = "xen-ldisk"
    And disk "kdisk" is in phase "prepared"
    When VM "kvmlnx" is powered on
    Then disk "kdisk" is in phase "assembled"
    And VM "kvmlnx" sees the XEN data of "ldisk" on disk "kdisk" from sector <n>
    When the guest of VM "kvmlnx" writes 8192 bytes at partition offset 4096 of disk "kdisk" with seed 1
    And I run "xen2kvmDisk -y -m kvmlnx"
    Then the command succeeds
    And the output contains "as leg 1"
    And disk "kdisk" is in phase "syncing"
    When the guest of VM "kvmlnx" writes 65536 bytes at partition offset 20M of disk "kdisk" with seed 2
    And the resync advances
    And the guest of VM "kvmlnx" writes 512 bytes at partition offset 1M of disk "kdisk" with seed 3
    And the resync of disk "kdisk" finishes
    Then disk "kdisk" is in phase "synced"
    When I run "xen2kvmDisk -y -m kvmlnx"
    Then the command succeeds
    And volume "kdisk" has no tag "xen"
    And volume "ldisk" has tag "vs" = "kvmlnx"
    And volume "xen-ldisk" has tag "vs" = "kvmlnx"
    And disk "kdisk" is in phase "migrated"
    When I run "xen2kvm verify -x ldisk -k kdisk -y"
    Then the command succeeds
    When VM "kvmlnx" is powered off
    Then disk "kdisk" is in phase "released"
    When VM "kvmlnx" is powered on
    Then VM "kvmlnx" uses volume "kdisk" directly
    When the guest of VM "kvmlnx" writes 4096 bytes at partition offset 12M of disk "kdisk" with seed 4
    And VM "kvmlnx" is powered off
    And I run "xen2kvmDisk -y -z -m kvmlnx"
    Then the command succeeds
    And volume "xen-ldisk" does not exist
    And volume "x2km0-kdisk" does not exist
    And volume "x2km1-kdisk" does not exist
    And volume "ldisk" exists
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector <n>

    Examples:
      | n    | flags |
      | 32   |       |
      | 2048 | -c    |

  Scenario: The operator command line does the same as the legacy flags
    Given a XEN VM "lnx2" with disk "ldisk2" of 8M
    And a KVM VM "kvm2" with disk "kdisk2" of 8M
    When I run "xen2kvm prepare -x ldisk2 -k kdisk2 --no-dos -y"
    Then the command succeeds
    And volume "kdisk2" has one Linux partition starting at sector 2048 holding 16384 sectors
    When I run "xen2kvm assemble kvm2 --disk kdisk2 -y"
    Then disk "kdisk2" is in phase "assembled"
    When I run "xen2kvm sync kvm2 --wait -y"
    Then the command succeeds
    And disk "kdisk2" is in phase "migrated"
    When I run "xen2kvm status --json"
    Then the output contains ""phase": "migrated""
    When I run "xen2kvm release kvm2 -y"
    Then disk "kdisk2" is in phase "released"
    When I run "xen2kvm cleanup kvm2 -y"
    Then volume "xen-ldisk2" does not exist
    And volume "kdisk2" holds the XEN data of "ldisk2" plus every guest write from sector 2048
