"""The fast nms (``ssd_edu.fast.nms``) against the reference greedy loop (``ssd_edu.nms``) and a
compiled C++ greedy NMS; the fast detect on SSD300 outputs by both of its methods (image by image,
the CPU's default; all at once, the GPU's), and the reference detect.

One CPU thread (``torch.set_num_threads(1)``), as the issue's target is stated for one core. The
C++ reference is compiled once with ``torch.utils.cpp_extension.load_inline`` into a folder under
the system temp dir (not the repository); if that fails the C++ rows are skipped with a note.
Every nms row checks that the kept indices are identical to the references'.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from common import report, timeit

from ssd_edu import nms as reference
from ssd_edu.fast.detect import detect
from ssd_edu.fast.nms import nms
from ssd_edu.priors import SSD300_VOC, default_boxes

# A plain greedy NMS as libraries ship it: sort, then for every kept box compute its overlap with
# each later box still alive. Same overlap formula as ssd_edu.boxes.box_iou, in float32.
CPP_SOURCE = r"""
#include <torch/extension.h>
#include <algorithm>
#include <vector>

torch::Tensor greedy_nms(torch::Tensor boxes, torch::Tensor scores, double threshold) {
  auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto sorted = boxes.index_select(0, order).contiguous();
  const float* b = sorted.data_ptr<float>();
  const int64_t n = sorted.size(0);
  std::vector<char> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    keep.push_back(i);
    const float area_i = std::max(b[4 * i + 2] - b[4 * i], 0.f) *
                         std::max(b[4 * i + 3] - b[4 * i + 1], 0.f);
    for (int64_t j = i + 1; j < n; ++j) {
      if (suppressed[j]) continue;
      const float area_j = std::max(b[4 * j + 2] - b[4 * j], 0.f) *
                           std::max(b[4 * j + 3] - b[4 * j + 1], 0.f);
      const float w = std::max(std::min(b[4 * i + 2], b[4 * j + 2]) -
                               std::max(b[4 * i], b[4 * j]), 0.f);
      const float h = std::max(std::min(b[4 * i + 3], b[4 * j + 3]) -
                               std::max(b[4 * i + 1], b[4 * j + 1]), 0.f);
      const float inter = w * h;
      const float uni = area_i + area_j - inter;
      const float iou = uni > 0.f ? inter / uni : 0.f;
      if (iou > threshold) suppressed[j] = 1;
    }
  }
  auto kept = torch::from_blob(keep.data(), {(int64_t)keep.size()}, torch::kLong).clone();
  return order.index_select(0, kept);
}
"""


def load_cpp():
    """The compiled reference, or None (with the reason) when it cannot be built here."""
    try:
        from torch.utils.cpp_extension import load_inline

        build = Path(tempfile.gettempdir()) / "ssd_edu_bench_nms_cpp"
        build.mkdir(exist_ok=True)
        module = load_inline(
            "ssd_edu_bench_nms_cpp",
            cpp_sources=CPP_SOURCE,
            functions=["greedy_nms"],
            build_directory=str(build),
            extra_cflags=["-O2"],
        )
        return module.greedy_nms, ""
    except Exception as e:  # noqa: BLE001 - any build failure only removes the C++ rows
        return None, f"C++ reference not built: {type(e).__name__}: {str(e)[:200]}"


def detection_like(n: int, generator: torch.Generator, device: str) -> tuple:
    """Boxes as a detector leaves them: 20 objects, each with many jittered copies (few kept)."""
    corner = torch.rand(20, 2, generator=generator) * 0.7
    objects = torch.cat((corner, corner + 0.05 + torch.rand(20, 2, generator=generator) * 0.25), 1)
    which = torch.randint(0, 20, (n,), generator=generator)
    boxes = objects[which] + torch.randn(n, 4, generator=generator) * 0.02
    scores = torch.rand(n, generator=generator)
    return boxes.to(device), scores.to(device)


def spread_out(n: int, generator: torch.Generator, device: str) -> tuple:
    """Boxes scattered uniformly over the image (most of them kept: the C++ loop's worst case)."""
    xy = torch.rand(n, 2, generator=generator)
    boxes = torch.cat((xy, xy + 0.02 + torch.rand(n, 2, generator=generator) * 0.2), 1)
    scores = torch.rand(n, generator=generator)
    return boxes.to(device), scores.to(device)


def main() -> None:
    torch.set_num_threads(1)
    cpp, why = load_cpp()
    if cpp is None:
        print(why)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        cases = [("clustered", detection_like, n) for n in (200, 1000, 5000)]
        cases.append(("spread out", spread_out, 1000))
        for kind, make, n in cases:
            boxes, scores = make(n, torch.Generator().manual_seed(n), device)
            kept = nms(boxes, scores, 0.45)
            t = timeit(lambda: nms(boxes, scores, 0.45), repeat=7)
            case = f"nms {n} boxes, {kind}"
            report("nms", case, t * 1e3, "ms", device, f"{kept.numel()} kept of {n}")
            if device != "cpu":
                continue
            if cpp is not None:
                assert torch.equal(cpp(boxes, scores, 0.45), kept), "C++ and nms disagree"
                t_cpp = timeit(lambda: cpp(boxes, scores, 0.45), repeat=7)
                note = f"nms/C++ = {t / t_cpp:.1f}x; identical indices"
                report("nms", f"C++ greedy {n} boxes, {kind}", t_cpp * 1e3, "ms", device, note)
            if n <= 1000:  # the reference loop at 5000 boxes takes seconds
                want = reference.nms(boxes, scores, 0.45)
                assert torch.equal(want, kept), "the reference and the fast nms disagree"
                t_ref = timeit(lambda: reference.nms(boxes, scores, 0.45), repeat=3)
                note = f"reference/fast = {t_ref / t:.0f}x; identical indices"
                case = f"reference nms (ssd_edu.nms) {n} boxes, {kind}"
                report("nms", case, t_ref * 1e3, "ms", device, note)

        priors = default_boxes(SSD300_VOC, device=device)  # [8732, 4]
        g = torch.Generator().manual_seed(0)
        loc = (torch.randn(32, 8732, 4, generator=g) * 0.5).to(device)
        for kind, shift in (("untrained (flat scores)", 0.0), ("confident background", 8.0)):
            logits = torch.randn(32, 8732, 21, generator=g).to(device)
            logits[..., 0] += shift  # a trained model puts most default boxes on background
            out = detect(loc, logits, priors)
            n_det = sum(len(b) for b, _, _ in out)
            # both methods, the device's default first; they give identical detections
            default = device != "cpu"
            for all_at_once in (default, not default):
                other = detect(loc, logits, priors, all_at_once=all_at_once)
                assert all(
                    torch.equal(a, b) for x, y in zip(out, other) for a, b in zip(x, y)
                ), "the two detect methods disagree"
                t = timeit(
                    lambda: detect(loc, logits, priors, all_at_once=all_at_once),
                    repeat=3 if all_at_once == default else 1,
                )
                method = "all at once" if all_at_once else "image by image"
                report(
                    "nms",
                    f"detect 32 x 8732 x 21, {kind}, {method}",
                    t * 1e3,
                    "ms",
                    device,
                    f"{n_det / 32:.0f} detections per image"
                    + ("" if all_at_once == default else "; not this device's default"),
                )
            if device == "cpu":  # the reference: a sort of all 8732 scores per image and class
                t_ref = timeit(lambda: reference.detect(loc, logits, priors), repeat=1, warmup=0)
                report(
                    "nms",
                    f"reference detect (ssd_edu.nms) 32 x 8732 x 21, {kind}",
                    t_ref * 1e3,
                    "ms",
                    device,
                    "loops over images and classes",
                )


if __name__ == "__main__":
    main()
