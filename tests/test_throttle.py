from ec2gw.throttle import Throttle


def test_burst_then_rate():
    throttle = Throttle(rate=2, burst=3)
    assert [throttle.allow("k", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("k", now=0.5)  # one token back after half a second
    assert not throttle.allow("k", now=0.5)
    assert throttle.allow("other", now=0.5)  # buckets are per key


def test_disabled_allows_everything():
    throttle = Throttle(rate=0, burst=0)
    assert all(throttle.allow("k", now=0.0) for _ in range(1000))


def test_bounded_number_of_keys():
    throttle = Throttle(rate=1, burst=1, max_keys=10)
    for i in range(100):
        throttle.allow(f"k{i}", now=0.0)
    assert len(throttle._buckets) == 10
