"""``python -m ssd_edu.detect`` (and ``ssd-edu-detect``): a checkpoint's detections on your images.

    python -m ssd_edu.detect runs/shapes/checkpoint.pt photo1.jpg photo2.png --out detections/

For each image: resize to the model's square input (as at test time in the paper, the aspect ratio
is not kept), normalise, run the network, decode the offsets against the default boxes, keep
class scores above ``--score``, suppress overlaps per class (NMS at 0.45), and draw what is left on
the original image, ``DIR/<name>_detections.png``. The boxes are fractions of the image, so they map
back onto the original pixels unchanged. The detections are also printed, in pixels.

The checkpoint carries everything needed to rebuild the network (model name, number of classes,
class names, default-box configuration; see :mod:`ssd_edu.checkpoint`), so no other file is read.

Paper: §3.7 (inference: confidence filter, per-class NMS with jaccard overlap 0.45, top k).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssd_edu.detect",
        description="Draw a trained SSD checkpoint's detections on images.",
    )
    p.add_argument("checkpoint", help="a checkpoint.pt written by python -m ssd_edu.train")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, help="folder for the drawn images")
    p.add_argument("--score", type=float, default=0.5, help="minimum class score drawn")
    p.add_argument("--top-k", type=int, default=50, help="at most this many boxes per image")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ssd_edu.detect`` and ``ssd-edu-detect``."""
    args = _parser().parse_args(argv)
    if args.top_k < 1:
        print(f"--top-k must be at least 1, got {args.top_k}", file=sys.stderr)
        return 2
    if not 0.0 <= args.score < 1.0:
        print(f"--score must lie in [0, 1), got {args.score}", file=sys.stderr)
        return 2
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        print(f"no such image file(s): {', '.join(missing)}", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works on servers
    import matplotlib.pyplot as plt

    from ssd_edu.checkpoint import load_model
    from ssd_edu.data.transforms import EvalTransform
    from ssd_edu.predict import predict
    from ssd_edu.viz import draw_boxes, show_image

    model, spec = load_model(args.checkpoint, device=args.device)
    class_names = spec["class_names"]
    to_input = EvalTransform(model.cfg.image_size)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    no_boxes = torch.zeros(0, 4)
    no_labels, no_difficult = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
    for path in map(Path, args.images):
        photo = Image.open(path).convert("RGB")
        image, *_ = to_input(photo, no_boxes, no_labels, no_difficult)  # [3, S, S]
        ((boxes, scores, labels),) = predict(
            model, image[None].to(args.device), score_threshold=args.score, top_k=args.top_k
        )
        boxes, scores, labels = boxes.cpu(), scores.cpu(), labels.cpu()

        fig, ax = plt.subplots(figsize=(6, 6 * photo.height / photo.width))
        size = show_image(ax, np.asarray(photo))  # the original pixels, not the resized input
        draw_boxes(ax, boxes, size, labels=labels, scores=scores, class_names=class_names)
        ax.set_title(f"{path.name}: {len(boxes)} detection(s), score > {args.score}")
        target = out_dir / f"{path.stem}_detections.png"
        fig.savefig(target, dpi=100, bbox_inches="tight")
        plt.close(fig)

        print(f"{path}: {len(boxes)} detection(s) -> {target}")
        pixels = boxes * torch.tensor([photo.width, photo.height] * 2)  # [K, 4] in pixels
        for (x1, y1, x2, y2), s, l in zip(pixels.tolist(), scores.tolist(), labels.tolist()):
            print(f"  {class_names[l - 1]:>12s} {s:.3f}  ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
