@safety @data_safety
Feature: Nothing that existed before xen2kvm touched it is lost until an explicit purge (issue 10)
  A recovery point (a StorPool snapshot) of every pre-existing volume the tool changes is taken
  before the first change; `abort` puts every volume back, `purge` is the only thing that
  deletes a recovery point.

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M
    And a XEN VM "win1" with disk "wdisk" of 16M
    And a KVM VM "kvmwin" with disk "kwdisk" of 16M

  Scenario: Swapped -x/-k with -b, then -z: the XEN data stays recoverable and abort restores it (finding 2)
    Given the volumes "wdisk,kwdisk" are remembered
    When I run "xen2kvmDisk -y -x kwdisk -k wdisk -b"
    Then the command succeeds
    And volume "wdisk" is not as remembered
    When I run "xen2kvmDisk -y -z"
    Then the command succeeds
    And volume "x2kold-wdisk" does not exist
    And snapshot "x2krp1-wdisk" holds the remembered data of "wdisk"
    When I run "xen2kvm status"
    Then the output contains "recovery points of wdisk (abortable): x2krp1-wdisk"
    When I run "xen2kvm abort --disk wdisk"
    Then the command succeeds
    And nothing changed
    When I run "xen2kvm abort --disk wdisk -y"
    Then the command succeeds
    And the output contains "kept as undo point(s) x2kundo1-wdisk"
    And volumes "wdisk,kwdisk" are as remembered

  Scenario: Swapped -x/-k in case-2 writes the MBR over the XEN disk: abort restores it (finding 2)
    Given the volumes "ldisk,kdisk" are remembered
    When I run "xen2kvmDisk -y -x kdisk -k ldisk"
    Then the command succeeds
    And volume "ldisk" is not as remembered
    And snapshot "x2krp1-ldisk" holds the remembered data of "ldisk"
    When I run "xen2kvmDisk -y -z"
    And I run "xen2kvm abort --disk ldisk -y"
    Then the command succeeds
    And volumes "ldisk,kdisk" are as remembered
    And no volume of xen2kvm is left for "ldisk"

  Scenario: Case-1 interrupted after the rename, then -z: nothing lost, the rerun converges, status shows it (finding 3)
    Given the volumes "wdisk,kwdisk" are remembered
    When the 8th change to the cluster fails
    And I run "xen2kvmDisk -y -x wdisk -k kwdisk -b"
    Then the command fails with "injected"
    And volume "kwdisk" does not exist
    When I run "xen2kvm status"
    Then the output contains "replacing"
    When I run "xen2kvmDisk -y -z"
    Then the command succeeds
    And the output contains "keeping x2kold-kwdisk: the case-1 replace of kwdisk is unfinished"
    And snapshot "x2krp1-kwdisk" holds the remembered data of "kwdisk"
    When I run "xen2kvmDisk -y -x wdisk -k kwdisk -b"
    Then the command succeeds
    And volume "kwdisk" holds the same bytes as volume "wdisk"
    When I run "xen2kvmDisk -y -z"
    Then volume "x2kold-kwdisk" does not exist
    When I run "xen2kvm abort --disk kwdisk -y"
    Then the command succeeds
    And volumes "wdisk,kwdisk" are as remembered

  Scenario: A prepare that crashed half-way is aborted: the grown KVM volume gets its size back
    Given the volumes "ldisk,kdisk" are remembered
    When the 11th change to the cluster fails
    And I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command fails with "injected"
    And volume "kdisk" is 16M plus 32 sectors
    When I run "xen2kvm status"
    Then the output contains "prepare did not finish"
    When I run "xen2kvm abort --disk kdisk -y"
    Then the command succeeds
    And volumes "ldisk,kdisk" are as remembered
    And no volume of xen2kvm is left for "kdisk"

  Scenario Outline: Abort from phase <phase> puts back every byte, size and tag, and is itself undoable
    Given the resync speed is limited to 1024 KiB/s
    And the volumes "ldisk,kdisk,wdisk,kwdisk" are remembered
    When the migration of "<disk>" is taken to phase "<phase>" and the VM is off
    And I run "xen2kvm abort --disk <disk>"
    Then the command succeeds
    And nothing changed
    When I run "xen2kvm abort --disk <disk> -y"
    Then the command succeeds
    And volumes "ldisk,kdisk,wdisk,kwdisk" are as remembered
    And no volume of xen2kvm is left for "<disk>"
    And the undo points of "<disk>" hold every guest write to it
    When I run "xen2kvm abort --disk <disk> -y"
    Then the command succeeds
    And the output contains "nothing is left to undo"

    Examples:
      | phase    | disk   |
      | prepared | kdisk  |
      | assembled | kdisk |
      | syncing  | kdisk  |
      | synced   | kdisk  |
      | migrated | kdisk  |
      | released | kdisk  |
      | cleaned  | kdisk  |
      | case-1   | kwdisk |
      | in-place | ldisk  |

  Scenario: Abort is refused while the VM runs, and says how to stop it
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvm abort kvmlnx -y"
    Then the command is refused with "power the VM off"

  Scenario: Purge deletes recovery points only once the VM ran from its raw volume, and names them
    Given disk "ldisk" is migrated to "kdisk" of VM "kvmlnx"
    When I run "xen2kvm purge kvmlnx -y"
    Then the command is refused with "has not run from /dev/storpool/kdisk"
    When I run "xen2kvmDisk -y -z -m kvmlnx"
    Then volume "xen-ldisk" does not exist
    When VM "kvmlnx" is powered on
    And VM "kvmlnx" is powered off
    And I run "xen2kvm purge kvmlnx"
    Then the output contains "purge deletes x2krp1-kdisk, x2krp1-ldisk"
    And nothing changed
    When I run "xen2kvmDisk -y -Z -m kvmlnx"
    Then the command succeeds
    And the output contains "storpool -B snapshot x2krp1-kdisk delete x2krp1-kdisk"
    And snapshot "x2krp1-kdisk" does not exist
    And snapshot "x2krp1-ldisk" does not exist
    And volume "kdisk" holds the XEN data of "ldisk" plus every guest write from sector 32
