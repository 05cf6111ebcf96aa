"""SSD300 forward latency and throughput (CPU: batch 1 and 8, channels_last off/on); on a GPU,
forward and forward+backward throughput in float32 and in bf16 autocast with channels_last.

The small CPU model's training-size forward is reported too, since that is what the notebooks run.

``predict`` on the CPU (:mod:`ssd_edu.fast.inference`): SSD300, 8 images, 2 threads, random
weights, score threshold 0.99 (so that NMS has almost nothing to do), the fast path against the
same network run plainly in fp32 NCHW (``precision="fp32"``), the two timed in turn. Issue 18
measured our plain fp32 ssd300 at 0.88x torchvision's time in this setting; the goal is <= 0.5x.
"""

import time

import torch
from common import report, timeit

from ssd_edu.fast.inference import cpu_has_bf16, resolve_precision
from ssd_edu.model import ssd300, ssd_small
from ssd_edu.predict import predict


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


def predict_rows(rounds: int = 4) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    torch.manual_seed(0)
    model = ssd300().eval()
    images = torch.randn(8, 3, 300, 300)
    runs = {p: (lambda p=p: predict(model, images, score_threshold=0.99, precision=p))
            for p in ("fp32", "auto")}  # fmt: skip
    seconds: dict[str, list[float]] = {p: [] for p in runs}
    for fn in runs.values():
        fn()  # warm-up: oneDNN picks its kernels
    for _ in range(rounds):  # alternately, so that a busy machine slows both alike
        for p, fn in runs.items():
            start = time.perf_counter()
            fn()
            seconds[p].append(time.perf_counter() - start)
    plain, fast = (sorted(seconds[p])[rounds // 2] for p in ("fp32", "auto"))
    mode = resolve_precision("auto", "cpu")
    how = "bf16 autocast, channels_last" if mode == "bf16" else "fp32, channels_last"
    native = "native bf16" if cpu_has_bf16() else "no native bf16"
    case = "predict SSD300, 8 images (score > 0.99)"
    report("model", case, plain * 1e3, "ms", "cpu", "plain fp32 NCHW (precision='fp32')")
    report("model", case, fast * 1e3, "ms", "cpu",
           f"{how} ({native}): {fast / plain:.2f}x the fp32 time")  # fmt: skip
    torch.set_num_threads(threads)


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
    predict_rows()
    if torch.cuda.is_available():
        cuda_rows()


if __name__ == "__main__":
    main()
