"""SSD300 forward latency and throughput (CPU: batch 1 and 8, channels_last off/on); on a GPU,
forward and forward+backward throughput in float32 and in bf16 autocast with channels_last.

The small CPU model's training-size forward is reported too, since that is what the notebooks run.
"""

import torch
from common import report, timeit

from ssd_edu.model import ssd300, ssd_small


def cpu_rows() -> None:
    torch.manual_seed(0)
    model = ssd300().eval()
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        note = "channels_last" if channels_last else "NCHW"
        for batch in (1, 8):
            x = torch.randn(batch, 3, 300, 300).contiguous(memory_format=fmt)
            with torch.inference_mode():
                t = timeit(lambda: model(x), repeat=5 if batch == 1 else 3)
            if batch == 1:
                report("model", "SSD300 forward, batch 1", t * 1e3, "ms", "cpu", note)
            else:
                report("model", f"SSD300 forward, batch {batch}", batch / t, "img/s", "cpu", note)

    small = ssd_small(num_classes=5).eval()
    x = torch.randn(32, 3, 128, 128)
    with torch.inference_mode():
        t = timeit(lambda: small(x), repeat=5)
    report("model", "ssd_small forward, batch 32 (128 px)", 32 / t, "img/s", "cpu", "NCHW")


def cuda_rows() -> None:
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = ssd300().cuda()
    for bf16 in (False, True):
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        model = model.to(memory_format=fmt)
        note = "bf16 autocast, channels_last" if bf16 else "float32, NCHW"
        for batch in (32, 64):
            x = torch.randn(batch, 3, 300, 300, device="cuda").contiguous(memory_format=fmt)

            def forward():
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                    return model(x)

            def forward_backward():
                loc, logits = forward()
                (loc.float().square().mean() + logits.float().logsumexp(-1).mean()).backward()
                model.zero_grad(set_to_none=True)

            model.eval()
            with torch.inference_mode():
                t = timeit(forward, repeat=10, warmup=3)
            report("model", f"SSD300 forward, batch {batch}", batch / t, "img/s", "cuda", note)
            model.train()
            t = timeit(forward_backward, repeat=10, warmup=3)
            report(
                "model", f"SSD300 forward+backward, batch {batch}", batch / t, "img/s", "cuda", note
            )


def main() -> None:
    cpu_rows()
    if torch.cuda.is_available():
        cuda_rows()


if __name__ == "__main__":
    main()
