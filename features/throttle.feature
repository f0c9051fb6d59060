Feature: Adaptive resync throttle: the copy runs as fast as the guest's write latency allows

  # @fakeonly: the guest's load schedule and its latency are the fake's model (deterministic on
  # the virtual clock), and the 32 GiB disks (long enough a copy to steer) are sparse only in
  # the fake (the lab's volumes live on a 384 MiB tmpfs). In the lab,
  # tests/lab/test_throttle_lab.py runs the adaptive sync under a real writer and checks the
  # host is left as the operator had it (finished, SIGINT, SIGTERM, kill -9 and a rerun).

  Background:
    Given a XEN VM "big1" with a large disk "bdisk" of 32G
    And a KVM VM "kvmbig" with a large disk "kbig" of 32G
    And disk "bdisk" is prepared for "kbig" and VM "kvmbig" runs
    And the operator set the resync limits to 5000 and 300000 KiB/s

  @throttle @fakeonly
  Scenario: The rate follows the modelled latency through a burst and an idle guest
    Given the guest of VM "kvmbig" writes 2000 blocks of 4 KiB per second to disk "kbig"
    And from 40 s on it writes 20000 blocks per second
    And from 80 s on it writes 0 blocks per second
    When I run "xen2kvm sync kvmbig --wait --adaptive -y"
    Then the command succeeds
    And disk "kbig" is in phase "migrated"
    And the guest's write latency stayed within 1.6 times its idle latency, but in the interval its load rose and the 2 intervals the throttle probed full speed
    And the resync ran under 60 % of its rate before the burst from 42 s to 80 s
    And the resync ran at 4000000 KiB/s from 84 s on
    And the host's "dev.raid.speed_limit_min" is 5000
    And the host's "dev.raid.speed_limit_max" is 300000

  @throttle @fakeonly
  Scenario: An operator's latency target is kept instead of the measured one
    Given the guest of VM "kvmbig" writes 2000 blocks of 4 KiB per second to disk "kbig"
    When I run "xen2kvm sync kvmbig --wait --adaptive --latency-target 0.6 -y"
    Then the command succeeds
    And the guest's write latency stayed between 0.45 and 0.66 ms once the copy was steered
    And the host's "dev.raid.speed_limit_max" is 300000

  @throttle @fakeonly
  Scenario: A rerun undoes the limits of an adaptive sync that was killed
    Given an adaptive sync was killed while it held the resync at 80000 KiB/s
    When I run "xen2kvm sync kvmbig"
    Then the output contains "sysctl -w dev.raid.speed_limit_min=5000"
    And nothing changed
    When I run "xen2kvm sync kvmbig -y"
    Then the command succeeds
    And the host's "dev.raid.speed_limit_min" is 5000
    And the host's "dev.raid.speed_limit_max" is 300000
    When I run "xen2kvm tune"
    Then the output contains "speed_limit_min=5000"
    And the output does not contain "interrupted"

  @throttle @fakeonly
  Scenario: The adaptive throttle refuses fixed rates and needs --wait, changing nothing
    When I run "xen2kvm sync kvmbig --wait --adaptive --max-rate 9000 -y"
    Then the command fails with "drop --min-rate/--max-rate"
    And nothing changed
    When I run "xen2kvm sync kvmbig --adaptive -y"
    Then the command fails with "add --wait"
    And nothing changed
