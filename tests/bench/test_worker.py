"""The bench's worker, one measurement in a fresh process: its own memory, before and at its peak."""
from softfold.bench.worker import ENGINES, peak_rss_mib, rss_mib


def test_it_reads_its_own_memory_and_has_an_engine_per_runtime():
    assert rss_mib() > 0 and peak_rss_mib() > 0
    assert set(ENGINES) == {"runner", "genai", "naive"}
