"""``truepose train-clip``: captions name what was drawn, the loss matches rows by caption, and a
short run learns and writes a tower that ``truepose train`` loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from truepose_core.clip_train import (
    CLIPTrainConfig,
    batch_rows,
    captioned_crops,
    contrastive_loss,
    train_clip,
)
from truepose_core.data.captions import (
    colour_name,
    colour_words,
    person_caption,
    person_part_captions,
    region_caption,
)
from truepose_core.data.synthfashion import SynthFashion
from truepose_core.presets import tiny_truepose_config


@pytest.mark.parametrize(
    "rgb, name",
    [
        ((0, 0, 0), "black"),
        ((255, 255, 255), "white"),
        ((128, 128, 128), "grey"),
        ((250, 5, 5), "deep bright red"),
        ((30, 40, 100), "dark blue"),
        ((150, 230, 150), "pale bright green"),
        ((255, 128, 0), "deep bright orange"),
    ],
)
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


def test_colour_levels_follow_the_name():
    assert colour_words((250, 5, 5)) == "deep bright red"
    assert colour_words((250, 5, 5), 8) == "deep bright red (7 0 0)"
    assert colour_words((0, 128, 255), 4) == "deep bright azure (0 2 3)"
    identity = SynthFashion(length=1, seed=2).sample(0)[0]
    assert f"({identity.pants[0] * 8 // 256} " in region_caption(identity, "Pants", 8)
    assert "(" not in person_caption(identity)


def test_batches_by_kind_hold_one_kind():
    kinds = torch.tensor([5, 5, 9, -1, 13, 9, 5, -1])
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        rows = batch_rows(kinds, 16, True, g)
        assert len(set(kinds[rows].tolist())) == 1
        seen.add(int(kinds[rows[0]]))
    assert seen == {5, 9, -1, 13}
    mixed = batch_rows(kinds, 64, False, g)
    assert len(set(kinds[mixed].tolist())) == 4


def test_captions_name_the_drawn_colours_and_pattern():
    data = SynthFashion(length=40, seed=3)
    for index in range(40):
        identity = data.sample(index)[0]
        shirt = region_caption(identity, "Upper-clothes")
        assert colour_name(identity.shirt.color_a) in shirt
        if identity.shirt.pattern != "plain":
            assert colour_name(identity.shirt.color_b) in shirt
        assert (" print" in shirt) == (identity.shirt.text is not None)
        assert colour_name(identity.pants) in region_caption(identity, "Pants")
        assert colour_name(identity.skin) in region_caption(identity, "Face")
        whole = person_caption(identity)
        assert colour_name(identity.background) + " background" in whole
        assert identity.hair_style in whole
        assert region_caption(identity, "Background") == ""


def test_crops_carry_their_regions_captions():
    cfg = CLIPTrainConfig(images=2, seed=5)
    config = tiny_truepose_config()
    pixels, captions, ids, kinds = captioned_crops(cfg, config)
    size = config.clip_image_size
    assert pixels.shape == (len(ids), 3, size, size) and pixels.dtype == torch.float16
    texts = [captions[i] for i in ids]
    identity = SynthFashion(length=2, seed=5).sample(0)[0]
    # both images of pair 0: each shows the shirt, and the whole image comes after its regions
    assert texts.count(region_caption(identity, "Upper-clothes")) == 2
    assert texts.count(person_caption(identity)) == 2
    assert "" not in captions
    # the crop of pair 0's source shirt is the row with the shirt's caption
    from truepose_core.clip_regions import clip_pixels, region_squares
    from truepose_core.parsing import get_label_set

    item = SynthFashion(length=2, seed=5)[0]
    images = item["source_image"][None].add(1).div(2)
    squares, slots, _ = region_squares(images, item["source_parsing"][None], get_label_set("lip"))
    shirt = clip_pixels([squares[slots.index((0, 5))]], size).half()
    row = (pixels == shirt).flatten(1).all(1).nonzero().flatten().tolist()
    assert [texts[r] for r in row] == [region_caption(identity, "Upper-clothes")]


def test_part_captions_name_each_part_once_and_agree_with_the_full_caption():
    identity = SynthFashion(length=4, seed=3).sample(1)[0]
    parts = person_part_captions(identity)
    full = person_caption(identity)
    lower = region_caption(identity, "Skirt" if identity.lower == "skirt" else "Pants")
    assert len(parts) == 4 and len(set(parts)) == 4
    assert lower.removeprefix("a plain ") in parts[1]  # the lower clothes have their own caption
    assert all(p.startswith("a person ") for p in parts)
    for part in parts:  # every part's words are in the full caption
        words = part.removeprefix("a person ").split(" ", 1)[1]
        assert words.removeprefix("a ").split(" with ")[0] in full


@pytest.mark.parametrize("whole, captions_per_image", [("full", 1), ("parts", 4), ("both", 5)])
def test_whole_images_come_once_per_caption(whole, captions_per_image):
    """The regions' rows do not change; each whole image is repeated, pixel for pixel, once
    for each of its captions."""
    config = tiny_truepose_config()
    base = captioned_crops(CLIPTrainConfig(images=2, seed=5), config)
    pixels, captions, ids, kinds = captioned_crops(
        CLIPTrainConfig(images=2, seed=5, whole_captions=whole), config
    )
    regions = base[3] >= 0
    torch.testing.assert_close(pixels[kinds >= 0], base[0][regions])
    whole_rows = (kinds == -1).nonzero().flatten()
    assert len(whole_rows) == 4 * captions_per_image  # 2 pairs, 2 images each
    identity = SynthFashion(length=2, seed=5).sample(0)[0]
    expected = {
        "full": [person_caption(identity)],
        "parts": person_part_captions(identity),
        "both": [person_caption(identity), *person_part_captions(identity)],
    }[whole]
    source = base[0][base[3] == -1][0]  # pair 0's whole source image
    rows = [r for r in whole_rows.tolist() if torch.equal(pixels[r], source)]
    assert sorted(captions[ids[r]] for r in rows) == sorted(expected)


def test_contrastive_loss_matches_rows_by_caption():
    torch.manual_seed(0)
    image = torch.randn(6, 8)
    text = image + 0.01 * torch.randn(6, 8)
    ids = torch.arange(6)
    aligned = contrastive_loss(image, text, ids, 20.0)
    shuffled = contrastive_loss(image, text.roll(1, 0), ids, 20.0)
    assert aligned < 0.1 < shuffled
    # two rows with one caption are both matches: swapping their texts changes nothing
    ids = torch.tensor([0, 0, 1, 2, 3, 4])
    swapped = text[[1, 0, 2, 3, 4, 5]]
    loss = contrastive_loss(image, text, ids, 20.0)
    assert loss == pytest.approx(float(contrastive_loss(image, swapped, ids, 20.0)), abs=1e-5)
    assert contrastive_loss(image, swapped, torch.arange(6), 20.0) > loss + 1


def test_short_run_learns_and_train_loads_the_tower(tmp_path):
    from truepose_core.clip_regions import build_clip_vision, load_clip_vision
    from truepose_core.weights import read_metadata

    out = tmp_path / "clip.safetensors"
    cfg = CLIPTrainConfig(
        output=str(out), images=12, steps=80, batch_size=64, lr=3e-3, colour_levels=8
    )
    assert train_clip(cfg, progress=False) == out
    meta = read_metadata(out)
    assert float(meta["loss_end"]) < float(meta["loss_start"]) - 0.3
    config = tiny_truepose_config()
    tower = load_clip_vision(config, out)
    torch.manual_seed(1)
    random = build_clip_vision(config)
    assert tower.proj.shape == random.proj.shape
    assert not torch.equal(tower.proj, random.proj)


def test_clip_probe_reads_a_linear_colour_and_not_noise():
    """scripts/clip_probe.py: a colour that is a linear function of the embedding is read
    back almost exactly; from an embedding unrelated to it, no better than its mean."""
    from script_modules import script_module

    ridge_error = script_module("clip_probe").ridge_error
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g).double().numpy()
    colour = x @ torch.randn(8, 3, generator=g).double().numpy() * 30 + 120
    err, base = ridge_error(x, colour, 300, lam=1e-6)
    assert err < 0.5 < 30 < base
    noise = torch.randn(400, 8, generator=g).double().numpy()
    err, base = ridge_error(noise, colour, 300)
    assert err > 0.9 * base


def test_clip_probe_mlp_reads_a_nonlinear_colour_and_not_noise():
    """scripts/clip_probe.py --mlp: a colour that is a product of embedding dimensions (which
    no linear fit reads) is read back well; from an unrelated embedding, no better than its
    mean (the stopping point is chosen on validation rows, never on the scored ones)."""
    from script_modules import script_module

    probe = script_module("clip_probe")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 8, generator=g).double().numpy()
    colour = np.stack([x[:, 0] * x[:, 1], x[:, 2] * x[:, 3], x[:, 4] ** 2], axis=1) * 30 + 120
    linear, base = probe.ridge_error(x, colour, 600)
    assert probe.mlp_error(x, colour, 600, iters=600) < 0.5 * linear
    noise = torch.randn(800, 8, generator=g).double().numpy()
    assert probe.mlp_error(noise, colour, 600, iters=600) > base


@pytest.mark.parametrize(
    "change",
    [
        {"images": 0},
        {"steps": 0},
        {"batch_size": 1},
        {"colour_levels": -1},
        {"lr": 0},
        {"whole_captions": "some"},
    ],
)
def test_bad_settings_are_refused_by_name(change):
    from truepose_core.errors import ConfigError

    name = next(iter(change))
    with pytest.raises(ConfigError, match=name):
        CLIPTrainConfig(**change)


def test_cli_reports_bad_settings_in_one_line(capsys):
    from truepose_core.cli import main

    assert main(["train-clip", "--images", "0"]) == 2
    err = capsys.readouterr().err
    assert "images must be an int >= 1" in err and "Traceback" not in err
