"""The command lines: ``python -m ssd_edu.train`` (:mod:`ssd_edu.cli.train`, its data sources in
:mod:`ssd_edu.cli.datasets`) and ``python -m ssd_edu.detect`` (:mod:`ssd_edu.cli.detect`); console
scripts ``ssd-edu-train`` and ``ssd-edu-detect``. They parse options and call the library; nothing
here is needed to use it.
"""
