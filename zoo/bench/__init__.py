"""Benchmarks: the suite runner (``zoo-bench``, :mod:`zoo.bench.suite`) and the measurements
behind the other reports -- throughput against torchvision, compute against the measured peak,
the harness's overhead, the data pipeline and scaling across processes."""
