"""Frame-count arithmetic and timesteps for multipliers and target frame rates."""
from fractions import Fraction

import pytest

from pervfi_core.errors import InputError
from pervfi_core.pipeline.schedule import ExplicitTimesteps, Retime, as_schedule


@pytest.mark.parametrize("n,mult", [(2, 2), (2, 4), (5, 2), (5, 3), (40, 8)])
def test_multiplier_counts(n, mult):
    r = Retime(multiplier=mult)
    plan = r.plan(n)
    assert len(plan) == r.count(n) == (n - 1) * mult + 1
    assert [tg.index for tg in plan] == list(range(len(plan)))
    inputs = [tg for tg in plan if tg.is_input]
    assert [tg.pair for tg in inputs] == list(range(n))  # every input appears once, in order


def test_two_frames_x2_gives_one_new_frame_in_the_middle():
    plan = Retime(multiplier=2).plan(2)
    assert [(tg.pair, tg.t) for tg in plan] == [(0, 0), (0, Fraction(1, 2)), (1, 0)]


def test_24_to_60_fps_arbitrary_timesteps():
    r = Retime(fps_in=24, fps_out=60)
    plan = r.plan(25)  # one second of input
    assert len(plan) == r.count(25) == 61
    assert r.output_fps(24) == 60
    # positions j*0.4: t cycles through 0, .4, .8, .2, .6 exactly (no drift after many frames)
    assert [tg.t for tg in plan[:6]] == [0, Fraction(2, 5), Fraction(4, 5), Fraction(1, 5), Fraction(3, 5), 0]
    assert plan[-1].pair == 24 and plan[-1].is_input
    for tg in plan:
        assert tg.pair + tg.t == tg.index * Fraction(2, 5)


def test_ntsc_rates_exact():
    r = Retime(fps_in=Fraction(30000, 1001), fps_out=60)
    assert r.count(1001) == 1 + (1000 * 60 * 1001) // 30000
    assert Retime(fps_in=25, fps_out=10).count(26) == 11  # down-sampling works too


def test_plan_matches_count_for_many_rates():
    for fin, fout in [(24, 60), (25, 50), (30, 24), (23.976, 60), (12, 100)]:
        r = Retime(fps_in=fin, fps_out=fout)
        for n in (2, 3, 17):
            assert len(r.plan(n)) == r.count(n)


@pytest.mark.parametrize("kwargs", [dict(multiplier=0), dict(multiplier=2.5), dict(multiplier=True),
                                    dict(fps_in=25, fps_out=0), dict(fps_in=25, fps_out="abc"),
                                    dict(fps_in=25, fps_out=-3), dict(), dict(multiplier=2, fps_in=25, fps_out=50)])
def test_bad_rates(kwargs):
    with pytest.raises(InputError):
        Retime(**kwargs)


def test_explicit_timesteps():
    s = as_schedule([0.25, 0.5])
    assert isinstance(s, ExplicitTimesteps)
    assert [float(tg.t) for tg in s.plan(3)] == [0, 0.25, 0.5, 0, 0.25, 0.5, 0]
    assert s.count(3) == len(s.plan(3)) == 7
    for bad in ([0.5, 0.25], [0.0], [1.0], [], ["x"]):
        with pytest.raises(InputError):
            ExplicitTimesteps(bad)
    assert [float(tg.t) for tg in Retime(multiplier=4).targets_in_pair(0)[1:]] == [0.25, 0.5, 0.75]


def test_bounds_are_the_same_for_every_caller():
    """The CLI, the API and the nodes all build these objects: 2..64, 63 timesteps, rates within 64x."""
    from pervfi_core.pipeline.schedule import MAX_RATE_RATIO, MAX_TIMESTEPS, MULTIPLIER_RANGE

    assert MULTIPLIER_RANGE == (2, 64) and MAX_TIMESTEPS == 63 and MAX_RATE_RATIO == 64
    assert Retime(multiplier=64).count(2) == 65
    for bad in (1, 65, -2):
        with pytest.raises(InputError, match="from 2 to 64"):
            Retime(multiplier=bad)
    with pytest.raises(InputError, match="from 2 to 64"):
        as_schedule(65)
    assert ExplicitTimesteps([k / 64 for k in range(1, 64)]).count(2) == 65
    with pytest.raises(InputError, match="at most 63"):
        ExplicitTimesteps([k / 65 for k in range(1, 65)])
    assert Retime(fps_in=25, fps_out=1600).count(2) == 65 and Retime(fps_in=64, fps_out=1).count(129) == 3
    for fps_out in (1601, 0.39, 1e9):
        with pytest.raises(InputError, match="within 64x of the input rate"):
            Retime(fps_in=25, fps_out=fps_out)
    for rate in (float("nan"), float("inf"), 0, -1, 1e6):
        with pytest.raises(InputError, match="input fps"):
            Retime(fps_in=rate, fps_out=30)
