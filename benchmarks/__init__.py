"""The benchmark harness: each workload (``w1_throughput`` ... ``w5_transfer``) run on a
buildfarm master and on a stock Buildbot 4.3 master, one after the other, through the same
trigger (force over HTTP) and the same completion signal (polling the HTTP API).

    .venv/bin/python -m benchmarks.run [--workloads W1,W4] [--runs 3] [--quick]
"""
