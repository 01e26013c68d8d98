"""`vtbench tokenize`, `TokenDataset` and the LlamaGen/MAR exports, on small generated folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_contract import TINY
from vtbench.bench.datasets import FolderDataset, center_crop_adm
from vtbench.data import TokenDataError, TokenDataset
from vtbench.exports import export
from vtbench.pretokenize import TokenizeConfig, TokenizeError, make_views, storage_for, tokenize
from vtbench.tokenizers import create_tokenizer, load_tokenizer


def _folder(root: Path, n: int = 6, classes=("cat", "dog"), corrupt: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / classes[i % len(classes)] if classes else root
        d.mkdir(parents=True, exist_ok=True)
        h, w = 72 + 8 * (i % 3), 96 - 4 * (i % 4)  # various sizes and aspect ratios
        smooth = rng.random((h // 8 + 1, w // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:h, :w]
        Image.fromarray((255 * smooth).astype(np.uint8)).save(d / f"img{i:02d}.png")
    if corrupt:
        (root / classes[0] / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _views(dataset, resolution: int, augment: str) -> dict[str, torch.Tensor]:
    """Each sample's views in [-1, 1], preprocessed independently of the tokenize code path."""
    out = {}
    for s in dataset.samples("all"):
        try:
            arr = center_crop_adm(s.load(resolution), int(resolution * 1.1) if augment == "ten-crop" else resolution)
        except Exception:
            continue
        img = torch.from_numpy(np.array(arr)).permute(2, 0, 1)[None]
        out[s.id] = make_views(img, augment, resolution)[0].float() / 127.5 - 1
    return out


LAYOUTS = {  # name -> (tokenizer, resolution): a grid, factorized, levels, bits, two multi-scale, 1D, continuous
    "grid": ("mini-vq", 32), "factorized": ("mini-fqgan", 32), "levels": ("mini-tokenbridge", 32),
    "binary": ("mini-bsq", 32), "multiscale": ("mini-var", 32), "multiscale-binary": ("mini-infinity", 32),
    "1d": ("mini-titok", 256), "continuous": ("mini-kl", 32),
}


@pytest.mark.parametrize("kind", list(LAYOUTS))
def test_tokens_read_back_in_a_dataloader_and_decode_as_reconstruct(tmp_path, kind):
    """Batch 1, one view: the stored tokens are those of ``tok.encode`` of the one image, so their decode is
    ``tok.reconstruct`` of it bit for bit (convolutions round differently at other batch sizes, which moves
    continuous latents by ~1e-7)."""
    name, res = LAYOUTS[kind]
    tok = load_tokenizer(name).eval()
    ds_images = FolderDataset(_folder(tmp_path / "data", n=5))
    cfg = TokenizeConfig(resolution=res, batch_size=1, shard_size=2, latent_dtype="float32")
    tokenize(tok, ds_images, tmp_path / "tok", cfg, progress=False)
    layout = tok.layout(res)
    ds = TokenDataset(tmp_path / "tok")
    assert len(ds) == 5 and ds.classes == ["cat", "dog"]
    seqs, labels = zip(*torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2))
    seq = torch.cat(seqs)
    want = (5, layout.seq_len) + ((layout.components,) if layout.components > 1 or not layout.discrete else ())
    assert tuple(seq.shape) == want
    assert torch.cat(labels).tolist() == [0, 0, 0, 1, 1]  # sorted ids: cat/img00, cat/img02, cat/img04, dog/...
    views = _views(ds_images, res, "none")
    with torch.inference_mode():
        for i in (0, 4):
            x = views[ds.sample_id(i)]
            stored = ds.tokens(i)
            assert torch.equal(stored.flat(), tok.encode(x).flat().to(stored.flat().dtype))
            assert torch.equal(seq[i], stored.flat()[0])
            assert torch.equal(tok.decode(stored), tok.reconstruct(x))


def test_views_are_the_flipped_images_tokens(tmp_path):
    tok = load_tokenizer("mini-var").eval()
    data = FolderDataset(_folder(tmp_path / "data", n=3))
    tokenize(tok, data, tmp_path / "tok", TokenizeConfig(augment="flip", resolution=32, batch_size=2), progress=False)
    ds, views = TokenDataset(tmp_path / "tok", view="all"), _views(data, 32, "flip")
    with torch.inference_mode():
        for i in range(3):
            x = views[ds.sample_id(i)]
            assert torch.equal(ds[i][0], tok.encode(x).flat())
            assert torch.equal(ds.tokens(i, view=1).flat(), tok.encode(x.flip(-1)[:1]).flat())


def test_storage_is_the_smallest_dtype_and_wide_bits_stay_bits():
    from vtbench.tokenizers import TokenLayout

    def layout(kind, vocab):
        return TokenLayout(kind, vocab, ((4, 4),))

    assert storage_for(layout("index", (256,))).dtype == "uint8"
    assert storage_for(layout("index", (16384,))).dtype == "uint16"
    assert storage_for(layout("index", (100000,))).dtype == "int32"
    assert (storage_for(layout("binary", (2,) * 18)).array, storage_for(layout("binary", (2,) * 18)).dtype) == \
        ("ids", "int32")
    assert storage_for(layout("binary", (2,) * 64)).array == "bits"
    assert (storage_for(layout("factorized", (16384, 16384))).array,
            storage_for(layout("factorized", (16384, 16384))).dtype) == ("codes", "uint16")


def test_ids_output_packs_components_and_views_all_stacks(tmp_path):
    tok = load_tokenizer("mini-bsq").eval()
    tokenize(tok, FolderDataset(_folder(tmp_path / "data", n=3)), tmp_path / "tok",
             TokenizeConfig(augment="ten-crop", resolution=32, batch_size=3), progress=False)
    flat, _ = TokenDataset(tmp_path / "tok", view="all")[1]
    ids, _ = TokenDataset(tmp_path / "tok", output="ids", view="all")[1]
    n = tok.layout(32).seq_len
    assert flat.shape == (10, n, tok.layout(32).components) and ids.shape == (10, n)
    assert torch.equal(ids, tok.layout(32).pack(flat))
    with pytest.raises(TokenDataError, match="view is 'random', 'all' or 0..9"):
        TokenDataset(tmp_path / "tok", view=10)


def test_ten_crop_is_torchvisions_order():
    img = torch.arange(2 * 3 * 11 * 11).reshape(2, 3, 11, 11)
    v = make_views(img, "ten-crop", 8)
    assert v.shape == (2, 10, 3, 8, 8)
    assert torch.equal(v[:, 0], img[..., :8, :8]) and torch.equal(v[:, 3], img[..., 3:, 3:])
    assert torch.equal(v[:, 4], img[..., 2:10, 2:10])  # round(1.5) = 2, as torchvision's centre crop
    assert torch.equal(v[:, 5], img.flip(-1)[..., :8, :8])


def test_skipped_images_are_reported_and_ids_stay_in_order(tmp_path):
    data = _folder(tmp_path / "data", n=4, corrupt=True)
    with pytest.warns(UserWarning, match="broken.png"):
        meta = tokenize(load_tokenizer("mini-vq"), FolderDataset(data), tmp_path / "tok",
                        TokenizeConfig(resolution=32, shard_size=2), progress=False)
    m = json.loads(meta.read_text())
    assert m["dataset"]["num_planned"] == 5 and m["dataset"]["num_samples"] == 4
    assert [s["id"] for s in m["dataset"]["skipped"]] == ["cat/broken.png"]
    ds = TokenDataset(tmp_path / "tok")
    assert [ds.sample_id(i) for i in range(4)] == ["cat/img00.png", "cat/img02.png", "dog/img01.png", "dog/img03.png"]
    assert [ds.label(i) for i in range(4)] == [0, 0, 1, 1]


def test_another_configuration_in_the_same_folder_is_refused(tmp_path):
    data = FolderDataset(_folder(tmp_path / "data", n=2))
    tok = load_tokenizer("mini-vq")
    tokenize(tok, data, tmp_path / "tok", TokenizeConfig(resolution=32), progress=False)
    with pytest.raises(TokenizeError, match="augment, views differ"):
        tokenize(tok, data, tmp_path / "tok", TokenizeConfig(resolution=32, augment="flip"), progress=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "plan.json").write_text("{}")
    with pytest.raises(TokenDataError, match="did not finish"):
        TokenDataset(tmp_path / "half")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "vtbench", "tokenize", "--tokenizer", "mini-vq", "--resolution", "32", *args]


def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path):
    data = _folder(tmp_path / "data", n=24)
    args = ["--dataset", str(data), "--shard-size", "2", "--batch-size", "1", "--augment", "flip", "--quiet"]
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli("--out", str(out), *args), start_new_session=True)
    deadline = time.time() + 300
    while not (out / "shard-00001.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "shard-00001.json").exists() and not (out / "meta.json").exists(), "the run was not cut midway"
    (out / ".shard-00011.npy.planted.tmp").write_bytes(b"half")  # what a kill inside a write leaves
    subprocess.run(_cli("--out", str(out), *args), check=True)
    subprocess.run(_cli("--out", str(tmp_path / "whole"), *args), check=True)
    a, b = TokenDataset(out, view="all"), TokenDataset(tmp_path / "whole", view="all")
    assert len(a) == len(b) == 24
    assert [a.sample_id(i) for i in range(24)] == [b.sample_id(i) for i in range(24)]
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(24))
    assert not list(out.glob(".*.tmp"))


def test_torchrun_shards_equal_one_process(tmp_path):
    data = _folder(tmp_path / "data", n=7)
    args = ["--dataset", str(data), "--shard-size", "2", "--quiet"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "vtbench", "tokenize", "--tokenizer", "mini-vq", "--resolution", "32",
                    "--out", str(tmp_path / "two"), *args], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    subprocess.run(_cli("--out", str(tmp_path / "one"), *args), check=True)
    one, two = (json.loads((tmp_path / d / "meta.json").read_text()) for d in ("one", "two"))
    assert one["shards"] == two["shards"] and one["dataset"] == two["dataset"]
    for k in range(4):
        assert np.array_equal(np.load(tmp_path / "one" / f"shard-{k:05d}.npy"),
                              np.load(tmp_path / "two" / f"shard-{k:05d}.npy"))


class LlamaGenCodes(torch.utils.data.Dataset):
    """LlamaGen's ``dataset/imagenet.py`` ``CustomDataset`` read path, written out (files i.npy, 'flip' in
    the path draws one view)."""

    def __init__(self, feature_dir: str, label_dir: str, n: int):
        self.feature_dir, self.label_dir, self.flip = feature_dir, label_dir, "flip" in feature_dir
        self.files = [f"{i}.npy" for i in range(n)]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, idx):
        features = np.load(os.path.join(self.feature_dir, self.files[idx]))
        if self.flip:
            features = features[:, torch.randint(0, features.shape[1], (1,)).item()]
        labels = np.load(os.path.join(self.label_dir, self.files[idx]))
        return torch.from_numpy(features), torch.from_numpy(labels)


def test_llamagen_export_is_what_its_custom_dataset_reads(tmp_path):
    tok = load_tokenizer("mini-vq")
    tokenize(tok, FolderDataset(_folder(tmp_path / "data", n=4)), tmp_path / "tok",
             TokenizeConfig(resolution=32, augment="flip"), progress=False)
    with pytest.raises(TokenDataError, match="contains 'flip'"):
        export(tmp_path / "tok", "llamagen", tmp_path / "codes", progress=False)
    out = tmp_path / "imagenet_code_flip"
    assert export(tmp_path / "tok", "llamagen", out, progress=False) == 4
    ds = LlamaGenCodes(str(out / "imagenet32_codes"), str(out / "imagenet32_labels"), 4)
    ours, n = TokenDataset(tmp_path / "tok", output="ids", view="all"), tok.layout(32).seq_len
    for i in range(4):
        codes, label = ds[i]
        assert codes.dtype == torch.int64 and codes.shape == (1, n) and label.shape == (1,)
        assert any(torch.equal(codes[0], v) for v in ours[i][0]) and int(label) == ours.label(i)
    raw = np.load(out / "imagenet32_codes" / "0.npy")
    assert raw.shape == (1, 2, n) and raw.dtype == np.int64


def _mar_cached_folder(root: Path) -> list[tuple[Path, int]]:
    """MAR's ``CachedFolder`` (torchvision ``DatasetFolder``, extensions .npz): sorted class folders, then
    sorted files walked below each."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    return [(Path(d) / f, i) for i, c in enumerate(classes) for d, _, files in sorted(os.walk(root / c))
            for f in sorted(files) if f.endswith(".npz")]


def test_mar_export_is_what_its_cached_folder_reads(tmp_path):
    tok = create_tokenizer("mar-kl16", **TINY["mar-kl16"]).eval()
    data = FolderDataset(_folder(tmp_path / "data", n=4))
    tokenize(tok, data, tmp_path / "tok", TokenizeConfig(resolution=64, augment="flip", latent_dtype="float32"),
             progress=False)
    assert export(tmp_path / "tok", "mar", tmp_path / "cache", progress=False) == 4
    samples = _mar_cached_folder(tmp_path / "cache")
    assert [(p.relative_to(tmp_path / "cache").as_posix(), c) for p, c in samples] == [
        ("cat/img00.png.npz", 0), ("cat/img02.png.npz", 0), ("dog/img01.png.npz", 1), ("dog/img03.png.npz", 1)]
    views, layout = _views(data, 64, "flip"), tok.layout(64)
    with torch.inference_mode():
        for path, _ in samples:
            npz = np.load(path)
            x = views[path.relative_to(tmp_path / "cache").as_posix()[:-4]]
            post = tok.encode_posterior(x)
            for key, v in (("moments", 0), ("moments_flip", 1)):
                assert npz[key].dtype == np.float32 and npz[key].shape == (2 * layout.channels, *layout.scale_shapes[0])
                want = torch.cat([post.mean[v], post.logvar[v]]).numpy()
                assert np.allclose(npz[key], want, atol=1e-6)
    with pytest.raises(TokenDataError, match="continuous tokenizer"):
        tokenize(load_tokenizer("mini-vq"), data, tmp_path / "vq", TokenizeConfig(resolution=32, augment="flip"),
                 progress=False)
        export(tmp_path / "vq", "mar", tmp_path / "cache2", progress=False)
