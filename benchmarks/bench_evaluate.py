"""evaluate_detections at the size of VOC2007 test: 4952 images x 200 detections, 20 classes.

The data are simulated (seeded): about 3 objects per image, some of them difficult; per image a
few jittered copies of the objects plus random boxes of random classes up to 200 detections.
The target is under 2 s on one CPU core (torch.set_num_threads(1)). The rows time the fast form
(``ssd_edu.fast.evaluate``); the reference (``ssd_edu.evaluate``, the devkit's loop) is timed on the
first 500 images.
"""

import torch
from common import report, timeit

from ssd_edu import evaluate as reference
from ssd_edu.fast.evaluate import evaluate_detections

NUM_IMAGES, PER_IMAGE, NUM_CLASSES = 4952, 200, 20


def simulated_voc(device: str, seed: int = 0):
    """Ground truths and detections shaped like VOC2007 test and a detector's top-200 output."""
    g = torch.Generator().manual_seed(seed)
    detections, ground_truths = [], []
    for _ in range(NUM_IMAGES):
        n_obj = int(torch.randint(1, 6, (1,), generator=g))
        xy = torch.rand(n_obj, 2, generator=g) * 0.6
        gt = torch.cat((xy, xy + 0.1 + torch.rand(n_obj, 2, generator=g) * 0.3), dim=1)
        labels = torch.randint(1, NUM_CLASSES + 1, (n_obj,), generator=g)
        difficult = torch.rand(n_obj, generator=g) < 0.1
        # 3 jittered copies of each object, then random boxes of random classes
        hits = gt.repeat(3, 1) + torch.randn(3 * n_obj, 4, generator=g) * 0.03
        n_rand = PER_IMAGE - len(hits)
        xy = torch.rand(n_rand, 2, generator=g) * 0.7
        rand = torch.cat((xy, xy + 0.05 + torch.rand(n_rand, 2, generator=g) * 0.25), dim=1)
        boxes = torch.cat((hits, rand))
        det_labels = torch.cat(
            (labels.repeat(3), torch.randint(1, NUM_CLASSES + 1, (n_rand,), generator=g))
        )
        scores = torch.cat(
            (0.5 + 0.5 * torch.rand(len(hits), generator=g), torch.rand(n_rand, generator=g))
        )
        detections.append((boxes.to(device), scores.to(device), det_labels.to(device)))
        ground_truths.append((gt.to(device), labels.to(device), difficult.to(device)))
    return detections, ground_truths


def main() -> None:
    torch.set_num_threads(1)
    names = [f"class{c}" for c in range(1, NUM_CLASSES + 1)]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        dets, gts = simulated_voc(device)
        case = f"VOC07 mAP, {NUM_IMAGES} images x {PER_IMAGE} dets, {NUM_CLASSES} classes"
        t = timeit(lambda: evaluate_detections(dets, gts, names), repeat=3)
        report("evaluate", case, t, "s", device, "target < 2 s on one core")
        t = timeit(lambda: evaluate_detections(dets, gts, names, coco=True), repeat=3)
        report("evaluate", case + " + COCO 0.50:0.95", t, "s", device)
        if device == "cpu":
            part = (dets[:500], gts[:500])
            t_fast = timeit(lambda: evaluate_detections(*part, names), repeat=3)
            t_ref = timeit(lambda: reference.evaluate_detections(*part, names), repeat=1)
            report(
                "evaluate",
                f"reference (ssd_edu.evaluate), first 500 images x {PER_IMAGE} dets",
                t_ref,
                "s",
                device,
                f"the devkit's loop; fast form {t_ref / t_fast:.0f}x faster on the same images",
            )


if __name__ == "__main__":
    main()
