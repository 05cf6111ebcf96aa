"""The encode / decode checkers: pass the solution, fail the stub and each usual mistake."""

from __future__ import annotations

import pytest
import torch

from ssd_edu.exercises import ExerciseFailure, check_decode, check_encode


def to_cxcywh(b):
    return torch.cat(((b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]), dim=1)


def to_xyxy(b):
    return torch.cat((b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2), dim=1)


def encode_solution(matched, priors, variances=(0.1, 0.2)):
    g = to_cxcywh(matched)
    centre = (g[:, :2] - priors[:, :2]) / (variances[0] * priors[:, 2:])
    size = torch.log(g[:, 2:] / priors[:, 2:]) / variances[1]
    return torch.cat((centre, size), dim=1)


def decode_solution(loc, priors, variances=(0.1, 0.2)):
    centre = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])
    return to_xyxy(torch.cat((centre, size), dim=1))


def encode_no_variances(matched, priors, variances=(0.1, 0.2)):
    return encode_solution(matched, priors, (1.0, 1.0))


def encode_wh_swapped(matched, priors, variances=(0.1, 0.2)):
    g = to_cxcywh(matched)
    centre = (g[:, :2] - priors[:, :2]) / (variances[0] * priors[:, 2:].flip(1))  # cx by h
    size = torch.log(g[:, 2:] / priors[:, 2:]) / variances[1]
    return torch.cat((centre, size), dim=1)


def encode_constants(matched, priors, variances=(0.1, 0.2)):
    return encode_solution(matched, priors)  # ignores the argument


def encode_gt_size(matched, priors, variances=(0.1, 0.2)):
    g = to_cxcywh(matched)
    centre = (g[:, :2] - priors[:, :2]) / (variances[0] * g[:, 2:])
    size = torch.log(g[:, 2:] / priors[:, 2:]) / variances[1]
    return torch.cat((centre, size), dim=1)


def encode_no_log(matched, priors, variances=(0.1, 0.2)):
    g = to_cxcywh(matched)
    centre = (g[:, :2] - priors[:, :2]) / (variances[0] * priors[:, 2:])
    size = (g[:, 2:] / priors[:, 2:] - 1) / variances[1]
    return torch.cat((centre, size), dim=1)


def decode_no_variances(loc, priors, variances=(0.1, 0.2)):
    return decode_solution(loc, priors, (1.0, 1.0))


def decode_divides(loc, priors, variances=(0.1, 0.2)):
    return decode_solution(loc, priors, (1 / variances[0], 1 / variances[1]))


def decode_wh_swapped(loc, priors, variances=(0.1, 0.2)):
    centre = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:].flip(1)
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variances[1])
    return to_xyxy(torch.cat((centre, size), dim=1))


def decode_cxcywh(loc, priors, variances=(0.1, 0.2)):
    return to_cxcywh(decode_solution(loc, priors, variances))


def stub(*args):
    raise NotImplementedError()


def test_solutions_pass(capsys):
    check_encode(encode_solution)
    check_decode(decode_solution)
    out = capsys.readouterr().out
    assert "encode: all 6 cases passed" in out and "decode: all 6 cases passed" in out


def test_the_library_is_refused():
    from ssd_edu.boxes import decode, encode

    with pytest.raises(ExerciseFailure, match="library's own encode"):
        check_encode(encode)
    with pytest.raises(ExerciseFailure, match="library's own encode"):
        check_encode(lambda m, p, v=(0.1, 0.2): encode(m, p, v))  # a thin wrapper
    with pytest.raises(ExerciseFailure, match="library's own decode"):
        check_decode(decode)


@pytest.mark.parametrize(
    "fn, message",
    [
        (encode_no_variances, r"worked on paper(.|\n)*hint: the offsets are divided by the var"),
        (encode_wh_swapped, r"worked on paper(.|\n)*hint: the x offset is measured in default"),
        (encode_constants, r"other variances \(0.2, 0.5\)"),
        (encode_gt_size, r"hint: the centre offset is measured in units of the \*default box"),
        (encode_no_log, r"hint: the size offsets are logarithms"),
        (stub, "not implemented yet"),
    ],
    ids=["no_variances", "wh_swapped", "constants", "gt_size", "no_log", "stub"],
)
def test_encode_mistakes_fail_with_their_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_encode(fn)


@pytest.mark.parametrize(
    "fn, message",
    [
        (decode_no_variances, r"hint: the offsets are divided by the variances"),
        (decode_divides, r"hint: encode divides by the variances and decode multiplies"),
        (decode_wh_swapped, r"hint: the x offset is measured in default-box widths"),
        (decode_cxcywh, r"hint: decode returns corners"),
        (stub, "not implemented yet"),
    ],
    ids=["no_variances", "divides", "wh_swapped", "cxcywh", "stub"],
)
def test_decode_mistakes_fail_with_their_hint(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_decode(fn)
