"""The fast layer: the references of ssd_edu rewritten for speed, each tested equal to its
reference.

A student reads the reference modules (``ssd_edu/matching.py``, ``nms.py``, ``evaluate.py``, the
data transforms, ``step.py``); an engineer reads these. Each module here imports its reference
(its checks, constants and data classes), never the other way round, and names in its docstring
what it trades and the speed-up ``make bench`` measures. docs/design.md has the table of which
fast function answers for which reference.
"""
