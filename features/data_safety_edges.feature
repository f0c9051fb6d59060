@edges @safety
Feature: Data safety at the edges: a misbehaving API, local paths, one-line errors, checks before the first change, bad numbers, the emulator (issue 10, findings 7-12)

  Every refusal is one line that names the cause and the fix, changes nothing, and leaves every
  volume that existed before with its original content. @storpoolonly scenarios need the HTTP
  API: the fake has none, so there they are skipped; the fast suite runs them against the API
  emulator (tests/bdd/test_api_features.py), the kernel lab like every other scenario.

  Background:
    Given a XEN VM "lnx1" with disk "ldisk" of 16M
    And a KVM VM "kvmlnx" with disk "kdisk" of 16M
    And the content of every volume is recorded

  # finding 7
  @storpoolonly
  Scenario Outline: An API reply that is not the documented envelope stops the run with one line, and a rerun finishes
    Given the StorPool API answers "<shape>" to the next "<call>"
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command stops with exit 4 and one line naming "<call>: <what>"
    And volume "ldisk" holds its recorded content
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command succeeds
    And volume "kdisk" is 16M plus 32 sectors
    And volume "kdisk" has one Linux partition starting at sector 32 holding 32768 sectors
    And volume "xen-ldisk" holds the same bytes as volume "ldisk"
    And volume "kdisk" has tag "xen" = "xen-ldisk"
    And volume "ldisk" holds its recorded content

    Examples:
      | shape           | call                | what                              |
      | 500-html        | VolumeUpdate        | HTTP 500, non-JSON body           |
      | 200-list        | VolumeCreate        | HTTP 200, a JSON list instead     |
      | 200-null-data   | VolumesReassignWait | HTTP 200, `data` is null          |
      | 500-no-error    | VolumesList         | HTTP 500, no `error` object       |

  # finding 8
  Scenario: A lock folder planted as a symlink is refused and nothing appears where it points
    Given the host's lock folder is a symlink planted by someone else
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "is a symlink; remove it"
    And the folder the symlink points to is unchanged
    And every recorded volume holds its recorded content

  Scenario: A lock folder others can write to is refused
    Given the host's lock folder is writable by others
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "is writable by others (mode 777); chmod go-w"
    And every recorded volume holds its recorded content

  Scenario: The helper never sees the API token
    Given SP_AUTH_TOKEN is set in the environment
    And a helper that writes the names of its secret-looking variables at byte 4096 of its device
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p {helper}"
    Then the command succeeds
    And volume "xen-ldisk" has "SECRETS:|" at byte 4096
    And volume "ldisk" holds its recorded content

  # finding 9
  Scenario Outline: A volume named "<name>" is one line, not a traceback, before anything changes
    When I run "xen2kvmDisk -y -x ldisk -k <name>"
    Then the command is refused with "is not a valid StorPool name; use letters, digits"
    And every recorded volume holds its recorded content

    Examples:
      | name |
      | ..   |
      | .    |

  @storpoolonly
  Scenario: A lock folder that is a file is one line, not a traceback
    Given XEN2KVM_LOCK_DIR names a file
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "is not a directory; remove it or point XEN2KVM_LOCK_DIR"
    And every recorded volume holds its recorded content

  # finding 10
  Scenario: A helper that does not exist is refused before the first change
    When I run "xen2kvmDisk -y -x ldisk -k kdisk -p /nonexistent/convert-guest"
    Then the command is refused with "does not exist or is not executable on kvm1; install it"
    And volume "xen-ldisk" does not exist
    And every recorded volume holds its recorded content

  @storpoolonly
  Scenario Outline: A host setting the run needs is checked before the first change (<setting>)
    Given this host's "<setting>" is broken
    When I run "xen2kvmDisk -y -x ldisk -k kdisk"
    Then the command is refused with "<message>"
    And volume "xen-ldisk" does not exist
    And every recorded volume holds its recorded content

    Examples:
      | setting     | message                                                  |
      | SP_OURID    | no StorPool client ID for host kvm1; set SP_OURID        |
      | device root | does not exist on kvm1, so attached volumes cannot appear |

  # finding 11
  Scenario Outline: Resync rates are checked by tune's rule before they reach a dm table (<rates>)
    Given disk "ldisk" is prepared for "kdisk" and VM "kvmlnx" runs
    When I run "xen2kvm sync kvmlnx <rates> -y"
    Then the command is refused with "<message>"
    And the raid1 of disk "kdisk" has 1 leg
    And volume "ldisk" holds its recorded content

    Examples:
      | rates                                    | message                                      |
      | --max-rate -5                            | --max-rate -5 is out of range; give a positive |
      | --min-rate 5000 --max-rate 10            | 5000 must not exceed the maximum 10 KiB/s    |
      | --max-rate 1000000000000000000000        | is out of range; give a positive number      |

  # finding 12
  @storpoolonly
  Scenario: The API emulator refuses an impossible grow without changing anything, and answers a malformed request
    When the API is sent "VolumeUpdate/kdisk" with body "{"sizeAdd": 1000000000000000000000}"
    Then the API answers HTTP 400 with error "invalidParam"
    And volume "kdisk" is 16M plus 0 sectors
    When the API is sent "VolumeCreate" with body "{"name": "big", "size": 1000000000000000000000}"
    Then the API answers HTTP 400 with error "invalidParam"
    And volume "big" does not exist
    When the API is sent "VolumeCreate" with body "{not json"
    Then the API answers HTTP 400 with error "invalidParam"
    And every recorded volume holds its recorded content
