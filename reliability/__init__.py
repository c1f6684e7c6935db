"""Reliability runs: the soak with faults (``python -m reliability.soak``, ``make soak``) and
the fuzzer (``python -m reliability.fuzz``, ``make fuzz``), reported in docs/reliability.md."""
