"""The adaptive throttle's controller in closed loop with the fake's latency model (the guest's
write latency as a function of resync rate and guest load), interval by interval."""

from __future__ import annotations

import pytest

from xen2kvm.backends.fake.latency import IDLE_MS, latency_ms
from xen2kvm.throttle import (
    KERNEL_MIN_KIB,
    UNTHROTTLED_KIB,
    Controller,
    IoCounters,
    mean_write_ms,
    parse_dm_stats,
    parse_stat,
)


def drive(ctl: Controller, loads) -> list[tuple[int, float | None]]:
    """Each interval: the guest writes at `load` IOPS while the resync runs at the controller's
    rate; the mean latency of that interval is the next sample. (rate, latency) per interval."""
    out = []
    for iops in loads:
        lat = latency_ms(ctl.rate, iops) if iops else None
        out.append((ctl.rate, lat))
        ctl.step(lat)
    return out


def test_baseline_learns_the_idle_latency_at_the_floor_then_aims_at_factor_times_it():
    ctl = Controller()
    trace = drive(ctl, [2000] * 3)
    assert [r for r, _ in trace] == [KERNEL_MIN_KIB] * 3
    assert ctl.idle_ms == pytest.approx(latency_ms(KERNEL_MIN_KIB, 2000))
    assert ctl.target == pytest.approx(1.5 * ctl.idle_ms)
    assert ctl.phase == "steer" and ctl.rate == UNTHROTTLED_KIB // 64


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


def test_a_target_the_guest_misses_even_without_a_copy_holds_the_floor():
    for target in (0.0, IDLE_MS / 2):
        ctl = Controller(target_ms=target)
        trace = drive(ctl, [1000] * 12)
        assert {r for r, _ in trace} == {KERNEL_MIN_KIB}


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
