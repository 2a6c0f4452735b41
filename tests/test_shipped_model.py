"""End to end: the shipped SynthFashion model carries its source person to the target pose.

Guards the sampler, the VAE wrapper and the checkpoint format against regressions (any of them
broken turns the output into noise, or into a figure that ignores its source). Six held-out
pairs (test split, data seed 5: used by no figure in the README), the demo's settings.
The full quality table, beside the baselines, is ``scripts/quality.py``'s, not a test's.
"""

import math

import pytest
import torch
from script_modules import script_module

from truepose_core.checkpoint import load_truepose
from truepose_core.cli import SHIPPED_MODEL
from truepose_core.config import SamplingConfig
from truepose_core.metrics.regions import summary_scores
from truepose_core.pipeline import TruePosePipeline
from truepose_core.quality import held_out_batch


def test_shipped_model_uses_its_own_source():
    """Each pose from its own source beats copying the source (PSNR, SSIM) and another pair's."""
    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    batch = held_out_batch(tuple(pipe.config.resolution), 6, 5)
    truth = batch["targets"].permute(0, 2, 3, 1)
    scores = {}
    with torch.no_grad():
        for name, rows in (("own", torch.arange(6)), ("other", torch.arange(6).roll(1))):
            images = pipe(
                batch["sources"][rows], batch["parsing"][rows], batch["poses"], SamplingConfig()
            )
            scores[name] = summary_scores(
                images.permute(0, 2, 3, 1), truth, batch["target_parsing"], "lip"
            )
    own, other = scores["own"], scores["other"]
    copy = summary_scores(batch["sources"].permute(0, 2, 3, 1), truth, batch["target_parsing"])
    # Above copying the source (on these six pairs: 19.3 against 17.3 dB, SSIM 0.41 against 0.29).
    assert own["psnr"] > copy["psnr"] + 1.0, (own["psnr"], copy["psnr"])
    assert own["ssim"] > copy["ssim"] + 0.05, (own["ssim"], copy["ssim"])
    assert own["ssim"] > other["ssim"] + 0.05, (own["ssim"], other["ssim"])
    assert own["psnr"] > other["psnr"] + 1.5, (own["psnr"], other["psnr"])
    key = "upper_clothes_colour_error"
    assert own[key] < other[key] - 5, (own[key], other[key])


def test_source_use_script_reports_the_shipped_models_dependence():
    """scripts/source_use.py: with another pair's source the estimates get clearly worse."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    args = [sys.executable, str(repo / "scripts" / "source_use.py")]
    args += ["--checkpoint", str(SHIPPED_MODEL), "--pairs", "4", "--data-seed", "5"]
    args += ["--fusion-t", "200"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    estimates, attention, fusion, target = done.stdout.strip().split("\n\n")
    assert "eq. 8 entropy at t=200 |" in fusion.splitlines()[0]
    rows = [line.split(" | ") for line in estimates.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [200, 500, 800, 950]
    own, other, _none = (float(x) for x in rows[2][1:])  # t = 800
    assert own < 0.7 * other, rows[2]
    layers = [line.split(" | ") for line in attention.splitlines()[1:]]
    assert [r[0] for r in layers] == list(load_truepose(SHIPPED_MODEL).model.fusion)
    for _name, keys, entropy, log_n, top, spread in layers:
        assert 0 < float(entropy) <= float(log_n) + 0.01 and float(log_n) == round(
            math.log(int(keys)), 2
        )
        assert 1 / int(keys) - 1e-3 <= float(top) <= 1 and float(spread) > 0
    cross = [line.split(" | ") for line in fusion.splitlines()[1:]]
    assert [r[0] for r in cross] == [r[0] for r in layers]
    for _name, keys, entropy, log_n, spread, added, match in cross:
        assert 0 <= float(match) < int(keys)
        assert 0 < float(entropy) <= float(log_n) + 0.01 and float(log_n) == round(
            math.log(int(keys)), 2
        )
        assert float(spread) > 0 and float(added) > 0
    # The middle layer's eq. 8 attention is the one clearly peaked in the shipped model.
    middle = next(r for r in cross if r[0].startswith("middle"))
    assert float(middle[2]) < float(middle[3]) - 0.5, middle
    assert "TargetNet self-attention entropy on Fhat at t=200 |" in target.splitlines()[0]
    own_attention = [line.split(" | ") for line in target.splitlines()[1:]]
    assert [r[0] for r in own_attention] == [r[0] for r in layers]
    for _name, keys, entropy, log_n, own_weight, local in own_attention:
        assert 0 < float(entropy) <= float(log_n) + 0.01 and float(log_n) == round(
            math.log(int(keys)), 2
        )
        assert 0 <= float(own_weight) <= int(keys) and 0 <= float(local) <= int(keys)


def _source_use_module():
    return script_module("source_use")


def test_seen_loss_gives_seen_and_unseen_pairs_the_same_noise():
    """scripts/seen_loss.py: seen pairs come from the run's range and unseen ones from far
    beyond it, and pair k's noise and timestep do not depend on the rest of its list, so
    the two sets' losses differ by the pairs alone."""
    from truepose_core.data.synthfashion import SynthFashion

    script = script_module("seen_loss")
    seen, unseen = script.pair_indices(100, 6, 3)
    assert all(0 <= i < 100 for i in seen), seen
    assert all(i >= script.UNSEEN_START for i in unseen), unseen
    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    data = SynthFashion(size=tuple(pipe.config.resolution), length=10**7, seed=0)
    items = [data[i] for i in seen]
    losses, steps = script.pair_losses(pipe, items, 3, chunk=4)
    first, first_steps = script.pair_losses(pipe, items[:4], 3, chunk=4)
    assert torch.equal(steps[:4], first_steps) and torch.equal(losses[:4], first)
    assert bool((losses > 0).all()) and bool(torch.isfinite(losses).all())
    other, _ = script.pair_losses(pipe, [data[i] for i in unseen], 3, chunk=4)
    assert not torch.equal(other, losses)


def test_source_use_label_match_tells_matching_attention_from_uniform():
    """The last column of eq. 8's table: 1 for uniform attention, above 1 only for attention
    on the query's own label, below 1 for attention elsewhere."""
    from truepose_core.parsing import token_labels
    from truepose_core.unet_layers import level_sizes

    script = _source_use_module()
    # A 4x2 latent's parsing (upsampled 8x): labels 5 on top, 9 at the bottom, 0 in one cell.
    cells = torch.tensor([[[5, 5], [5, 0], [9, 9], [9, 9]]])
    parsing = cells.repeat_interleave(8, 1).repeat_interleave(8, 2)
    latent, half = level_sizes((4, 2), 2)
    source = token_labels(parsing, latent, 20)
    assert source.tolist() == [[5, 5, 5, 0, 9, 9, 9, 9]]
    assert token_labels(parsing, half, 20).tolist() == [[5, 9]]  # the 2x1 level
    target = source.flip(1)  # the target's tokens in another order: 9, 9, 9, 9, 0, 5, 5, 5
    same = (target[0][:, None] == source[0][None, :]).float()
    matching = (same / same.sum(-1, keepdim=True).clamp_min(1))[None, None]
    uniform = torch.full((1, 2, 8, 8), 1 / 8)
    elsewhere = ((1 - same) / (1 - same).sum(-1, keepdim=True))[None, None]
    assert script.label_match(uniform, source, target) == pytest.approx(1.0)
    # Label 9 holds 4 of 8 keys, label 5 holds 3: all mass there is 2x and 8/3x uniform's.
    assert script.label_match(matching, source, target) == pytest.approx((4 * 2 + 3 * 8 / 3) / 7)
    assert script.label_match(elsewhere, source, target) == pytest.approx(0.0)


def test_source_use_locality_tells_local_attention_from_uniform():
    """The last table: self weight and 3x3 mass are 1 for uniform attention, N and N over the
    neighbourhood's size for attention on the token itself, 0 for a token far away."""
    script = _source_use_module()
    n = 9
    uniform = torch.full((1, 2, n, n), 1 / n)
    assert script.locality(uniform, (3, 3)) == pytest.approx((1.0, 1.0))
    itself = torch.eye(n)[None, None].expand(1, 2, n, n)
    # Each token's 3x3 neighbourhood: 4 corners hold 4 tokens, 4 edges 6, the centre 9.
    expected_local = (4 * n / 4 + 4 * n / 6 + n / 9) / n
    assert script.locality(itself, (3, 3)) == pytest.approx((n, expected_local))
    corner = torch.zeros(1, 1, n, n)
    corner[..., 0, 8] = corner[..., 8, 0] = 1  # the two corners attend to each other
    corner[..., 1:8, 4] = 1  # the rest to the centre
    own, local = script.locality(corner, (3, 3))
    assert own == pytest.approx(1.0)  # the centre's own weight alone: 1 of 9 rows, x 9
    # Rows 0 and 8: nothing nearby. The centre is near every token: 9/6 for the 4 edges,
    # 9/4 for corners 2 and 6, 1 for the centre itself.
    assert local == pytest.approx((4 * 9 / 6 + 2 * 9 / 4 + 1) / 9)
    # A 2x3 grid, row-major: each token attends to the next one; 2 -> 3 and 5 -> 0 jump a
    # row and two columns. Nearby: 0 -> 1 and 3 -> 4 (6/4 each), 1 -> 2 and 4 -> 5 (6/6).
    following = torch.eye(6).roll(1, 1)[None, None]
    assert script.locality(following, (2, 3)) == pytest.approx((0.0, (2 * 6 / 4 + 2) / 6))


def test_knockout_script_switches_each_part_off(tmp_path):
    """scripts/knockout.py: every knock-out changes the shipped model's images."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    args = [sys.executable, str(repo / "scripts" / "knockout.py"), "--out", str(tmp_path)]
    args += ["--pairs", "2", "--seeds", "0", "--steps", "4"]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "knockout.json").read_text())
    assert set(report["baselines"]) == {"copy_source", "background_fill"}
    psnr = {name: runs[0]["psnr"] for name, runs in report["runs"].items()}
    assert len(psnr) == 7
    for name, value in psnr.items():
        if name != "full":
            assert abs(value - psnr["full"]) > 1e-3, (name, psnr)
    assert psnr["another pair's source"] < psnr["full"] - 1.0, psnr
    assert (tmp_path / "knockout.md").read_text().count("\n|") == 11


@pytest.mark.parametrize("part", ["to_q", "to_k"])
def test_source_use_reads_the_target_nets_own_self_attention(part):
    """With one fused layer's own q (or k) projection zeroed, its row of the last table is
    uniform attention exactly, and the other layers' rows are not."""
    script = _source_use_module()
    pipe = TruePosePipeline.from_checkpoint(SHIPPED_MODEL)
    batch = held_out_batch(tuple(pipe.config.resolution), 2, 5)
    hw = tuple(batch["sources"].shape[-2:])
    state = pipe.prepare(pipe.encode_source(batch["sources"], batch["parsing"]), batch["poses"], hw)
    noisy = torch.randn(pipe.encode_latents(batch["targets"]).shape)
    layer = next(x for x in pipe.model.layers if x.name == "output_4_0")
    attn = dict(pipe.model.target_unet.named_modules())[layer.module_path]
    with torch.no_grad():
        getattr(attn, part).weight.zero_()
    rows = {r[0]: r[1:] for r in script.target_self_attention(pipe.model, state, noisy, 500)}
    entropy, keys, own, local = rows.pop("output_4_0")
    assert (entropy, own, local) == pytest.approx((math.log(keys), 1.0, 1.0), abs=1e-4)
    assert all(e < math.log(n) - 0.01 for e, n, _, _ in rows.values()), rows
