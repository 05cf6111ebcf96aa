"""ssd_edu: the SSD object detector (Liu et al., 2016), one idea per module.

Start with :mod:`ssd_edu.priors` (default boxes) and :mod:`ssd_edu.boxes` (formats, IoU, offsets);
README.md maps every module to its notebook.
"""

__version__ = "0.1.0"
