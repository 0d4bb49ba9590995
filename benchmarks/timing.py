"""Wall-clock timing shared by the benchmark scripts."""

import time
from collections.abc import Callable


def timings_after_warm_up(function: Callable[[], object], repeats: int) -> list[float]:
    """Call `function` once untimed (warm-up: lazy initialisation, caches), then `repeats` times; the seconds of each."""
    function()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds
