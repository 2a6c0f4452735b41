"""Bad inputs on the diffusers path: clear errors, and CAA's documented corner cases."""

import pytest
import torch

from tests.tiny_models import (
    legs_only_pose,
    person_parsing,
    randomize_zero_layers,
    standing_pose,
    tiny_pipeline,
)
from truepose_core.caa import choose_regions
from truepose_core.errors import ImageError, ParsingError, PoseError
from truepose_core.keypoints import parse_deepfashion_row


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline()
    randomize_zero_layers(p.model)
    return p


def test_pose_without_visible_joints_is_refused(pipe):
    nothing = parse_deepfashion_row(str([-1] * 18), str([-1] * 18))
    encoding = pipe.encode_source(torch.rand(1, 3, 128, 88), person_parsing())
    with pytest.raises(PoseError, match="no visible joint"):
        pipe.prepare(encoding, [nothing], (128, 88))


def test_background_only_parsing_is_refused(pipe):
    with pytest.raises(ParsingError, match="no person found"):
        pipe.encode_source(torch.rand(1, 3, 128, 88), torch.zeros(1, 128, 88, dtype=torch.long))


def test_labels_outside_the_set_are_refused(pipe):
    parsing = person_parsing()
    parsing[0, 0, 0] = 42
    with pytest.raises(ParsingError, match="42"):
        pipe.encode_source(torch.rand(1, 3, 128, 88), parsing)


def test_odd_image_size_is_refused(pipe):
    with pytest.raises(ImageError, match="not a multiple of 8"):
        pipe.encode_source(torch.rand(1, 3, 124, 88), person_parsing(1, 124, 88))


def test_caa_with_fewer_regions_than_k_and_with_none():
    labels = torch.tensor([[0, 0, 5, 5], [0, 0, 0, 0]])
    received = torch.rand(2, 4)
    chosen, valid = choose_regions(received, labels, num_labels=20, k=2)
    assert chosen[0, 0].item() == 5 and valid[0].tolist() == [True, False]
    assert not valid[1].any()


def test_caa_adds_nothing_where_no_region_is_present(pipe):
    layer = next(iter(pipe.model.fusion.values()))
    from truepose_core.caa import CAASource

    hidden = torch.randn(2, 7, layer.caa.dim)
    k = torch.randn(2, layer.caa.heads, 2, layer.caa.dim // layer.caa.heads)
    valid = torch.tensor([[True, False], [False, False]])
    with torch.no_grad():
        out = layer.caa.fuse(hidden, CAASource(k, k, valid, torch.zeros(2, 2, dtype=torch.long)))
    assert torch.equal(out[1], hidden[1]) and not torch.equal(out[0], hidden[0])
    assert torch.isfinite(out).all()


def test_one_region_parsing_runs_end_to_end(pipe):
    parsing = torch.zeros(1, 128, 88, dtype=torch.long)
    parsing[0, 30:100, 20:70] = 5  # only a shirt: one region for K = 2
    encoding = pipe.encode_source(torch.rand(1, 3, 128, 88), parsing)
    state = pipe.prepare(encoding, [standing_pose(), legs_only_pose()], (128, 88))
    caa = next(src.caa for src in state.layers.values() if src.caa is not None)
    assert caa.valid.sum(dim=1).tolist() == [1, 1]
