"""``generate`` resumes per pair: damaged images are made again, shards never overlap."""

import logging

import pytest

from tests.tiny_models import save_tiny_checkpoint
from truepose_core.atomic import is_complete_image
from truepose_core.generate import generate_pairs, shard


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _generate(checkpoint, out, **kwargs):
    return generate_pairs(
        checkpoint, "synthfashion", "", out, limit=4, batch_size=2, steps=2, **kwargs
    )


def test_shards_are_disjoint_and_cover_every_pair():
    shards = [shard(10, rank, 3) for rank in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))


def test_images_that_do_not_decode_are_made_again(tmp_path, checkpoint, caplog):
    out = tmp_path / "gen"
    assert _generate(checkpoint, out) == 4
    names = sorted(p.name for p in out.iterdir())
    first = {name: (out / name).read_bytes() for name in names}
    cut = out / names[1]
    cut.write_bytes(first[names[1]][: len(first[names[1]]) // 2])  # written in place, cut off
    assert not is_complete_image(cut)
    (out / names[3]).unlink()
    (out / f".{names[3]}.tmp").write_bytes(b"\x89PNG")  # a killed write's leftover
    with caplog.at_level(logging.WARNING, logger="truepose"):
        assert _generate(checkpoint, out) == 2
    assert any(names[1] in r.getMessage() and "decode" in r.getMessage() for r in caplog.records)
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary file is left
    assert {name: (out / name).read_bytes() for name in names} == first


def test_two_processes_write_disjoint_files_with_the_same_images(tmp_path, checkpoint):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    _generate(checkpoint, single)
    written = [_generate(checkpoint, sharded, rank_world=(rank, 2)) for rank in range(2)]
    assert written == [2, 2]
    names = sorted(p.name for p in single.iterdir())
    assert sorted(p.name for p in sharded.iterdir()) == names
    assert all((single / n).read_bytes() == (sharded / n).read_bytes() for n in names)
