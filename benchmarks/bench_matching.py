"""Target assignment for a training batch: 32 images x 8732 default boxes x up to 20 objects.

Compares the fast batched form (``ssd_edu.fast.matching``: one padded [B, G_max, P] IoU) with the
reference (``ssd_edu.matching.assign_targets_batch``: a loop of ``assign_targets`` over images,
the forced step one pair per Python step), and measures what padding costs: the same batch with
every image holding 20 objects does the padded amount of work with no empty slots.
"""

import torch
from common import report, timeit

from ssd_edu.fast.matching import assign_targets_batch
from ssd_edu.matching import assign_targets_batch as reference_batch
from ssd_edu.priors import SSD300_VOC, default_boxes

BATCH, MAX_OBJECTS = 32, 20


def make_batch(counts: list[int], generator: torch.Generator) -> tuple[list, list]:
    boxes, labels = [], []
    for n in counts:
        xy = torch.rand(n, 2, generator=generator) * 0.8
        wh = 0.02 + torch.rand(n, 2, generator=generator) * 0.5
        boxes.append(torch.cat((xy, (xy + wh).clamp(max=1.0)), dim=1))
        labels.append(torch.randint(1, 21, (n,), generator=generator))
    return boxes, labels


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    counts = torch.randint(1, MAX_OBJECTS + 1, (BATCH,), generator=generator).tolist()
    mixed = make_batch(counts, generator)
    full = make_batch([MAX_OBJECTS] * BATCH, generator)
    filled = sum(counts) / (BATCH * MAX_OBJECTS)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        priors = default_boxes(SSD300_VOC, device=device)
        # ground truth already on the device, as a training loop's batch would be
        boxes = [b.to(device) for b in mixed[0]]
        labels = [lab.to(device) for lab in mixed[1]]

        def loop():  # the fast form one image at a time (the loop the CPU is weighed with)
            return [assign_targets_batch([b], [lab], priors) for b, lab in zip(boxes, labels)]

        t_loop = timeit(loop, repeat=3)
        t_batch = timeit(lambda: assign_targets_batch(boxes, labels, priors), repeat=3)
        t_ref = timeit(lambda: reference_batch(boxes, labels, priors), repeat=3)
        full_boxes = [b.to(device) for b in full[0]]
        full_labels = [lab.to(device) for lab in full[1]]
        t_full = timeit(lambda: assign_targets_batch(full_boxes, full_labels, priors), repeat=3)
        case = f"{BATCH} img x {len(priors)} priors x 1..{MAX_OBJECTS} obj"
        report("matching", f"loop of assign_targets, {case}", t_loop * 1e3, "ms", device)
        report(
            "matching",
            f"assign_targets_batch, {case}",
            t_batch * 1e3,
            "ms",
            device,
            f"{t_loop / t_batch:.1f}x vs loop; padded slots {100 * filled:.0f}% filled",
        )
        report(
            "matching",
            f"reference assign_targets_batch (ssd_edu.matching), {case}",
            t_ref * 1e3,
            "ms",
            device,
            f"fast batch {t_ref / t_batch:.1f}x faster, fast loop {t_ref / t_loop:.1f}x",
        )
        report(
            "matching",
            f"assign_targets_batch, {BATCH} img x {MAX_OBJECTS} obj each (no padding)",
            t_full * 1e3,
            "ms",
            device,
            f"{sum(counts)} vs {BATCH * MAX_OBJECTS} real objects",
        )


if __name__ == "__main__":
    main()
