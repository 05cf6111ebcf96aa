"""ssd_edu: the SSD object detector (Liu et al., 2016), one idea per module.

Start with :mod:`ssd_edu.priors` (default boxes) and :mod:`ssd_edu.boxes` (formats, overlap,
offsets), then :mod:`~ssd_edu.matching`, :mod:`~ssd_edu.mining`, :mod:`~ssd_edu.loss`,
:mod:`~ssd_edu.nms`, :mod:`~ssd_edu.model`, :mod:`~ssd_edu.data`, :mod:`~ssd_edu.evaluate` and
:mod:`~ssd_edu.step`: each is the paper's rule, short enough to read at a sitting. The same rules
rewritten for speed live in :mod:`ssd_edu.fast`, tested equal to them; the training loop
(:mod:`~ssd_edu.train`), inference (:mod:`~ssd_edu.predict`) and the command lines use those.
docs/design.md maps every file, format and public name; README.md maps modules to notebooks.
"""

__version__ = "0.1.0"
