"""box_iou on the sizes matching sees: 8732 default boxes against 50 ground-truth boxes."""

import torch
from common import report, timeit

from ssd_edu.boxes import box_iou, cxcywh_to_xyxy
from ssd_edu.priors import SSD300_VOC, default_boxes


def main() -> None:
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        priors = cxcywh_to_xyxy(default_boxes(SSD300_VOC, device=device))
        xy = torch.rand(50, 2, device=device) * 0.5
        gt = torch.cat((xy, xy + 0.1 + torch.rand(50, 2, device=device) * 0.4), dim=1)
        t = timeit(lambda: box_iou(priors, gt), repeat=20, number=10)
        report("boxes", "box_iou 8732 x 50", t * 1e6, "us", device)


if __name__ == "__main__":
    main()
