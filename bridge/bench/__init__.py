"""``bridge bench`` / ``make bench``: reproducible throughput, latency and memory scenarios on
the local stack, each figure beside a reference measured in the same run (docs/measurements.md).
"""
