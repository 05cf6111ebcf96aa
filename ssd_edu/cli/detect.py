"""``python -m ssd_edu.detect`` (and ``ssd-edu-detect``): a checkpoint's detections on your images.

    python -m ssd_edu.detect runs/shapes/checkpoint.pt photo1.jpg photo2.png --out detections/

For each image: resize to the model's square input (as at test time in the paper, the aspect ratio
is not kept), normalise, run the network (channels_last, and in bf16 on a CPU that computes bf16
natively unless ``--fp32`` is given: :mod:`ssd_edu.fast.inference`), decode the offsets against
the default boxes, keep class scores above ``--score``, suppress overlaps per class (NMS at 0.45),
and draw what is left on the original image, ``DIR/<name>_detections.png`` (two images of the
same name get ``<name>_2``, and the command says so). The boxes are fractions of the image, so
they map back onto the original pixels unchanged; they are printed in pixels, clipped to the
image. A file that cannot be read as an image is reported by name and skipped, the others are
still done, and the exit status is then 1.

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
    p.add_argument(
        "--fp32", action="store_true", help="fp32 only (default: bf16 on a CPU with native bf16)"
    )
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
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, works on servers

    from ssd_edu.checkpoint import load_model

    try:
        model, spec = load_model(args.checkpoint, device=args.device)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path, target in _targets([Path(p) for p in args.images], Path(args.out)).items():
        try:
            _detect_one(model, spec["class_names"], path, target, args)
        except OSError as e:  # ImageReadError names the file; the other images still go on
            print(f"skipped {e}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} of {len(args.images)} image(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _targets(paths: list[Path], out_dir: Path) -> dict[Path, Path]:
    """One output file per input; a name already taken in this run gets a numbered suffix."""
    targets: dict[Path, Path] = {}
    taken: dict[str, Path] = {}
    for path in paths:
        if path in targets:
            continue
        name, n = f"{path.stem}_detections.png", 1
        while name in taken:
            n += 1
            name = f"{path.stem}_{n}_detections.png"
        if n > 1:
            first = taken[f"{path.stem}_detections.png"]
            print(f"note: {path} -> {name} ({path.stem}_detections.png is {first}'s)")
        taken[name], targets[path] = path, out_dir / name
    return targets


def _detect_one(model, class_names: list[str], path: Path, target: Path, args) -> None:
    import matplotlib.pyplot as plt

    from ssd_edu.atomic import atomic_write
    from ssd_edu.data.images import read_image
    from ssd_edu.data.transforms import EvalTransform
    from ssd_edu.predict import predict
    from ssd_edu.viz import draw_boxes, show_image

    photo = read_image(path)  # 8-bit RGB; an unreadable file raises an error naming it
    nothing = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=bool))
    image, *_ = EvalTransform(model.cfg.image_size)(photo, *nothing)  # [3, S, S]
    ((boxes, scores, labels),) = predict(
        model, image[None].to(args.device), score_threshold=args.score, top_k=args.top_k,
        precision="fp32" if args.fp32 else "auto",
    )  # fmt: skip
    boxes = boxes.cpu().clamp(0, 1)  # the network may reach past the image; the picture may not
    scores, labels = scores.cpu(), labels.cpu()
    fig, ax = plt.subplots(figsize=(6, 6 * photo.height / photo.width))
    size = show_image(ax, np.asarray(photo))  # the original pixels, not the resized input
    draw_boxes(ax, boxes, size, labels=labels, scores=scores, class_names=class_names)
    ax.set_title(f"{path.name}: {len(boxes)} detection(s), score > {args.score}")
    atomic_write(target, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    print(f"{path}: {len(boxes)} detection(s) -> {target}")
    pixels = boxes * torch.tensor([photo.width, photo.height] * 2)  # [K, 4] in pixels
    for (x1, y1, x2, y2), s, l in zip(pixels.tolist(), scores.tolist(), labels.tolist()):
        print(f"  {class_names[l - 1]:>12s} {s:.3f}  ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})")


if __name__ == "__main__":
    sys.exit(main())
