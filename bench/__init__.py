"""Benchmarks of the Pachyderm storage against Label Studio's own providers, measured in one run.

    bash bench/run.sh            # default sizes (about 25 minutes on 2 CPUs)
    bash bench/run.sh --quick    # 10x smaller, a smoke run
    bash bench/run.sh --profile  # where the Pachyderm import and export spend their time

See docs/performance.md for what each scenario measures and the latest numbers.
"""
