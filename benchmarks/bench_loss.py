"""MultiBoxLoss forward + backward, and hard negative mining alone, at SSD300 training sizes.

32 images x 8732 default boxes x 21 classes (VOC), about 3 positives in every 100 boxes.
"""

import torch
from common import report, timeit

from ssd_edu.loss import MultiBoxLoss
from ssd_edu.mining import hard_negative_mask

B, P, C = 32, 8732, 21


def make_batch(device: str):
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(B, P, 4, generator=g)
    logits = torch.randn(B, P, C, generator=g)
    loc_t = torch.randn(B, P, 4, generator=g)
    positive = torch.rand(B, P, generator=g) < 0.03
    cls_t = torch.where(positive, torch.randint(1, C, (B, P), generator=g), 0)
    return [t.to(device) for t in (loc, logits, loc_t, cls_t)]


def main() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    criterion = MultiBoxLoss()
    for device in devices:
        loc, logits, loc_t, cls_t = make_batch(device)
        loc.requires_grad_(True)
        logits.requires_grad_(True)

        def step():
            total, _, _ = criterion(loc, logits, loc_t, cls_t)
            total.backward()

        t = timeit(step, repeat=5, warmup=1)
        report("loss", f"MultiBoxLoss fwd+bwd {B}x{P}x{C}", t * 1e3, "ms", device)
        conf_loss = torch.rand(B, P, device=device)
        positive = cls_t > 0
        t = timeit(lambda: hard_negative_mask(conf_loss, positive), repeat=10, number=5)
        report("loss", f"hard_negative_mask {B}x{P}", t * 1e3, "ms", device)
        if device == "cuda":
            for dtype in (torch.float16, torch.bfloat16):
                half = logits.detach().to(dtype).requires_grad_(True)

                def step_half():
                    with torch.autocast("cuda", dtype=dtype):
                        total, _, _ = criterion(loc, half, loc_t, cls_t)
                    total.backward()

                t = timeit(step_half, repeat=5, warmup=1)
                name = str(dtype).removeprefix("torch.")
                report(
                    "loss",
                    f"MultiBoxLoss fwd+bwd {B}x{P}x{C}",
                    t * 1e3,
                    "ms",
                    device,
                    f"{name} logits, autocast",
                )


if __name__ == "__main__":
    main()
