import gc

from forwarder.runtime import MIDDLE_EVERY, tune_collector


def test_tuning_the_collector_raises_only_the_middle_generation_threshold() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector()
        assert gc.get_threshold() == (700, MIDDLE_EVERY, 10)
    finally:
        gc.set_threshold(*before)
