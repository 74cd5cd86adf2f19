"""The ``keyshop`` command: the one entry point that wires core, tasks, web and console.

It lives outside ``core`` because some commands start the UI layers (``run``,
``console``, ``worker``), which ``core`` must never import.
"""
