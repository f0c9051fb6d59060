"""The adaptive throttle's controller in closed loop with the fake's latency model (the guest's
write latency as a function of resync rate and guest load), interval by interval."""

from __future__ import annotations

import pytest

from xen2kvm.backends.fake.latency import IDLE_MS, latency_ms
from xen2kvm.throttle import (
    HISTOGRAM_US,
    KERNEL_MIN_KIB,
    UNTHROTTLED_KIB,
    Controller,
    IoCounters,
    mean_write_ms,
    parse_dm_stats,
    parse_stat,
    tail_ms,
    total,
)


def drive(ctl: Controller, loads, model=latency_ms) -> list[tuple[int, float | None]]:
    """Each interval: the guest writes at `load` IOPS while the resync runs at the controller's
    rate; the latency of that interval is the next sample. (rate, latency) per interval."""
    out = []
    for iops in loads:
        lat = model(ctl.rate, iops) if iops else None
        out.append((ctl.rate, lat))
        ctl.step(lat)
    return out


def test_baseline_learns_the_idle_latency_at_the_floor_then_probes_full_speed_and_steers():
    ctl = Controller()
    trace = drive(ctl, [2000] * 5)
    assert [r for r, _ in trace] == [KERNEL_MIN_KIB] * 3 + [UNTHROTTLED_KIB] * 2
    assert ctl.idle_ms == pytest.approx(latency_ms(KERNEL_MIN_KIB, 2000))
    assert ctl.target == pytest.approx(1.5 * ctl.idle_ms)
    assert ctl.full_ms == pytest.approx(latency_ms(UNTHROTTLED_KIB, 2000))
    # full speed costs the modelled guest 20x: slowing helps, so the copy is steered
    assert ctl.phase == "steer" and ctl.rate == UNTHROTTLED_KIB // 64


def one_cpu(baseline: int = 3):
    """The kernel lab's one CPU, measured (bench/lab_adaptive.py): the guest's tail is 0.3 ms
    before the copy joins (the first `baseline` intervals), and then any copy costs it about a
    scheduler tick, nearly whatever its rate."""
    seen = []

    def model(rate: float, iops: float) -> float:
        seen.append(rate)
        return 0.3 if len(seen) <= baseline else 9.0 + rate / UNTHROTTLED_KIB * 2.0
    return model


def test_a_copy_that_does_not_raise_the_latency_runs_at_full_speed():
    ctl = Controller()
    trace = drive(ctl, [500] * 20, model=lambda rate, iops: 0.25)
    assert ctl.phase == "free"
    assert [r for r, _ in trace[5:]] == [UNTHROTTLED_KIB] * 15


def test_when_the_floor_costs_the_guest_as_much_as_full_speed_the_copy_goes_free():
    """Full speed misses the target, so the copy is steered down; at the floor it still
    misses it by as much (less than `helps` better than full speed): slowing buys nothing."""
    ctl = Controller()
    trace = drive(ctl, [500] * 30, model=one_cpu())
    rates = [r for r, _ in trace]
    assert ctl.full_ms == pytest.approx(11.0) and ctl.target == pytest.approx(0.45)
    assert rates[5] < rates[4] and KERNEL_MIN_KIB in rates[5:]
    assert ctl.phase == "free" and rates[-10:] == [UNTHROTTLED_KIB] * 10


def test_an_operator_target_the_full_speed_copy_meets_runs_free_at_once():
    ctl = Controller(target_ms=12.0)
    trace = drive(ctl, [500] * 10, model=one_cpu())
    assert [r for r, _ in trace[3:]] == [UNTHROTTLED_KIB] * 7 and ctl.phase == "free"


def test_steering_stuck_at_the_floor_with_no_gain_goes_to_full_speed():
    """The guest's latency stops depending on the copy (its own load took over the device):
    held at the floor and over the target, the floor no longer beats the probe's full speed."""
    ctl = Controller()
    drive(ctl, [2000] * 30)
    assert ctl.phase == "steer"
    trace = drive(ctl, [2000] * 30, model=lambda rate, iops: 5.0)
    rates = [r for r, _ in trace]
    assert KERNEL_MIN_KIB in rates and rates[-1] == UNTHROTTLED_KIB and ctl.phase == "free"


def test_a_free_copy_learns_again_when_the_guest_starts_to_suffer():
    ctl = Controller()
    flat = drive(ctl, [2000] * 10, model=lambda rate, iops: 0.2)
    assert ctl.phase == "free" and flat[-1][0] == UNTHROTTLED_KIB
    trace = drive(ctl, [2000] * 40)  # now the copy does hurt: the fake's queue model
    rates = [r for r, _ in trace]
    assert rates[:2] == [UNTHROTTLED_KIB] * 2  # two intervals over the bar, then the floor
    assert rates[2:5] == [KERNEL_MIN_KIB] * 3 and ctl.phase == "steer"
    assert all(lat <= 1.1 * ctl.target for _, lat in trace[20:])


def test_steady_load_settles_near_the_target_and_keeps_copying():
    ctl = Controller()
    trace = drive(ctl, [5000] * 60)
    tail = trace[20:]
    lats = [lat for _, lat in tail]
    assert max(lats) <= 1.1 * ctl.target
    assert sum(lats) / len(lats) >= 0.7 * ctl.target  # not needlessly slow either
    rates = [r for r, _ in tail]
    assert min(rates) > 50 * KERNEL_MIN_KIB
    assert max(rates) / min(rates) < 1.6  # steady, not sawing between floor and ceiling


def test_a_burst_of_guest_load_cuts_the_rate_within_two_intervals_and_it_comes_back():
    ctl = Controller()
    loads = [2000] * 30 + [20000] * 20 + [2000] * 30
    trace = drive(ctl, loads)
    before = trace[29][0]
    during = trace[32:50]
    assert all(lat <= 1.1 * ctl.target for _, lat in during)
    assert max(r for r, _ in during) < 0.8 * before
    after = trace[60:]
    assert min(r for r, _ in after) > max(r for r, _ in during)
    assert max(lat for _, lat in after) <= 1.1 * ctl.target


def test_a_guest_that_goes_idle_gets_the_full_rate_within_a_few_intervals():
    ctl = Controller()
    trace = drive(ctl, [8000] * 30 + [0] * 10)
    assert trace[29][0] < UNTHROTTLED_KIB // 4
    assert trace[36][0] == UNTHROTTLED_KIB
    assert trace[39][0] == UNTHROTTLED_KIB


def test_an_operator_target_wins_over_the_measured_one():
    ctl = Controller(target_ms=3 * IDLE_MS)
    drive(ctl, [2000] * 40)
    assert ctl.target == 3 * IDLE_MS
    assert latency_ms(ctl.rate, 2000) == pytest.approx(3 * IDLE_MS, rel=0.3)


def test_an_idle_guest_is_not_throttled_and_its_first_writes_pause_the_copy_to_learn():
    ctl = Controller()
    trace = drive(ctl, [0] * 5)
    assert ctl.target is None and trace[-1][0] == UNTHROTTLED_KIB
    trace = drive(ctl, [3000] * 5)
    assert [r for r, _ in trace[1:4]] == [KERNEL_MIN_KIB] * 3
    assert ctl.idle_ms == pytest.approx(latency_ms(KERNEL_MIN_KIB, 3000))


def test_counters_give_the_mean_write_latency_of_an_interval():
    line = "  100 0 800 50   400 0 3200 1000   0 20 1050 0 0 0 0 0 0"
    c = parse_stat(line)
    assert c == IoCounters(400, 1000.0)
    assert mean_write_ms(c, IoCounters(600, 1300.0)) == pytest.approx(1.5)
    assert mean_write_ms(c, c) is None
    assert mean_write_ms(c, IoCounters(10, 5.0)) is None  # the device was recreated
    with pytest.raises(ValueError):
        parse_stat("1 2 3")


def test_dm_statistics_lines_count_nanoseconds():
    c = parse_dm_stats("0+131072 0 0 0 0 200 1 1600 819200 0 769280 769280 0 769280")
    assert c == IoCounters(200, 0.8192)
    with pytest.raises(ValueError):
        parse_dm_stats("0 1 2 3 4 5 6 7 8")


def hist(**at_us) -> tuple[int, ...]:
    """A histogram with `n` I/Os in the bucket that ends at each given bound (us)."""
    counts = [0] * (len(HISTOGRAM_US) + 1)
    for bound, n in at_us.items():
        counts[HISTOGRAM_US.index(int(bound[1:]))] = n
    return tuple(counts)


def test_the_tail_comes_from_the_histogram_of_the_interval():
    line = ("0+131072 0 0 0 0 200 1 1600 819200 0 769280 769280 0 769280 "
            + ":".join(map(str, hist(u50=150, u100=49, u10000=1))))
    before = parse_dm_stats(line)
    assert before.histogram == hist(u50=150, u100=49, u10000=1)
    # 1000 writes in the interval: 980 at 25-50 us, 10 at 7.5-10 ms, 10 at 10-15 ms
    after = IoCounters(1200, 0.8192 + 80.0, tuple(
        a + b for a, b in zip(before.histogram, hist(u50=980, u10000=10, u15000=10))))
    assert tail_ms(before, after) == pytest.approx(10.0)  # p99: the end of the 10 ms bucket
    assert tail_ms(before, after, 0.5) == pytest.approx(0.025 + 0.025 * 500 / 980)
    assert mean_write_ms(before, after) == pytest.approx(0.08)
    no_hist = IoCounters(1200, 80.8192)
    assert tail_ms(IoCounters(200, 0.8192), no_hist) == pytest.approx(0.08)  # the fake: mean
    assert tail_ms(after, after) is None


def test_counters_of_several_devices_add_up_with_their_histograms():
    a, b = IoCounters(1, 1.0, hist(u50=1)), IoCounters(2, 3.0, hist(u50=2, u100=1))
    assert total([a, b]) == IoCounters(3, 4.0, hist(u50=3, u100=1))
    assert total([a, IoCounters(2, 3.0)]) == IoCounters(3, 4.0)  # one without: the mean only
    assert total([]) == IoCounters()
    other_bounds = "0+8 0 0 0 0 1 0 8 1000 0 1000 1000 0 1000 1:0:0"
    assert parse_dm_stats(other_bounds).histogram == ()


def test_a_target_the_guest_misses_even_without_a_copy_holds_the_floor():
    for target in (0.0, IDLE_MS / 2):
        ctl = Controller(target_ms=target)
        trace = drive(ctl, [1000] * 12)
        assert {r for r, _ in trace} == {KERNEL_MIN_KIB}  # no probe: the floor it is


def test_the_floor_must_be_positive_and_under_the_ceiling():
    with pytest.raises(ValueError):
        Controller(floor=0)
    with pytest.raises(ValueError):
        Controller(floor=10, ceiling=5)


def test_limits_change_with_min_never_above_max_on_the_way():
    from xen2kvm.steering import SPEED_MAX, SPEED_MIN, restore_steps

    def walk(current, want):
        seen = dict(current)
        for step in restore_steps(current, want):
            seen[step.key] = step.value
            assert seen[SPEED_MIN] <= seen[SPEED_MAX], seen
        return seen

    low, high = {SPEED_MIN: 1000, SPEED_MAX: 1000}, {SPEED_MIN: 62500, SPEED_MAX: 62500}
    operator = {SPEED_MIN: 1234, SPEED_MAX: 56789}
    assert walk(low, high) == high and walk(high, low) == low
    assert walk(low, operator) == operator and walk(high, operator) == operator
    assert restore_steps(operator, operator) == []
