"""The clients compared by ``benchmarks/compare_peers.py``, one module each.

Each module is run as its own process (``python -m peers.NAME ...`` with the
``benchmarks`` directory on ``PYTHONPATH``) so that its CPU time and peak memory
are its own. Every peer takes the arguments of :func:`peers.common.parse_args`,
starts ``--count`` jobs of ``--process`` spread round-robin over ``--folder``\\ s,
waits for them until ``--deadline`` seconds have passed, and prints one JSON
line (:class:`peers.common.PeerResult`) on stdout.
"""
