import numpy as np
import pytest
import torch
from PIL import Image

from vtbench.bench.datasets import (
    BuiltinDataset,
    DatasetUnavailable,
    Fingerprint,
    FolderDataset,
    batches,
    get_dataset,
    to_square,
)


def _fingerprint(subset, resolution=64):
    fp = Fingerprint()
    for b in batches(BuiltinDataset().samples(subset), resolution, 8, []):
        fp.update(b)
    return fp.hexdigest()


def test_builtin_subsets_are_deterministic_and_distinct():
    ds = BuiltinDataset()
    sizes = {s: len(ds.samples(s)) for s in ("photos", "detail", "text")}
    assert sizes == {"photos": 11, "detail": 15, "text": 12}
    assert _fingerprint("detail") == _fingerprint("detail")
    assert _fingerprint("detail", 64) != _fingerprint("detail", 96)
    with pytest.raises(KeyError, match="photos, detail, text"):
        ds.samples("faces")


def test_builtin_text_carries_ground_truth_at_every_resolution():
    for res in (128, 256):
        batch = next(batches(BuiltinDataset().samples("text"), res, 32, []))
        truths = [m["text"] for m in batch.meta]
        assert len(truths) == 12 and all(t.strip() for t in truths)
        assert any("\n" in t for t in truths) and any("\n" not in t for t in truths)
        assert batch.images.shape == (12, 3, res, res) and batch.images.dtype == torch.uint8


def test_procedural_detail_is_rendered_at_the_evaluation_resolution():
    batch = next(batches(BuiltinDataset().samples("detail"), 64, 32, []))
    grating = batch.images[batch.ids.index("detail/grating_p2_h"), 0]
    assert set(grating[:, 0].tolist()) == {0, 255}  # full-contrast 2-px period, not resampled to grey


def test_to_square_resizes_short_side_and_centre_crops():
    img = Image.fromarray(np.zeros((100, 300, 3), np.uint8))
    assert to_square(img, 64).shape == (64, 64, 3)
    arr = np.zeros((50, 150, 3), np.uint8)
    arr[:, 50:100] = 255  # centre third white
    out = to_square(Image.fromarray(arr), 50)
    assert out.mean() > 250


@pytest.fixture
def messy_folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("hello world\n")
    Image.fromarray(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rng.integers(0, 65535, (64, 64), dtype=np.uint16)).save(tmp_path / "deep16.png")
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "sub_grey.jpg")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "notes.md").write_text("not an image")
    return tmp_path


def test_folder_dataset_reports_and_skips_bad_files(messy_folder):
    ds = FolderDataset(messy_folder)
    assert [s.reason for s in ds.skipped()] == ["not an image file (by extension)"]
    samples = ds.samples("photos")
    assert len(samples) == 5
    skipped = list(ds.skipped())
    with pytest.warns(UserWarning, match="corrupt.png"):
        got = [b for b in batches(samples, 32, 2, skipped)]
    ids = [i for b in got for i in b.ids]
    assert ids == ["alpha.png", "deep16.png", "good.png", "sub_grey.jpg"]
    assert [s.id for s in skipped] == ["notes.md", "corrupt.png"]
    good = got[1].meta[got[1].ids.index("good.png")]
    assert good["text"] == "hello world"


def test_unknown_dataset_and_offline_hub_dataset_fail_clearly(monkeypatch):
    with pytest.raises(DatasetUnavailable, match="unknown dataset"):
        get_dataset("no-such-dataset")
    pytest.importorskip("datasets")
    from vtbench.tokenizers import weights

    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    ds = get_dataset("vtbench-task1-imagenet")
    with pytest.raises(DatasetUnavailable, match="cannot be reached"):
        ds.samples("photos")


def test_a_sidecar_that_is_not_utf8_drops_only_that_ground_truth(tmp_path):
    for name in ("a", "b"):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "b.txt").write_text("\ufeffgood text\n", encoding="utf-8")  # a BOM is still UTF-8
    ds = FolderDataset(tmp_path)
    [skip] = ds.skipped()
    assert skip.id == "a.txt"
    assert "not UTF-8 (byte 0xe9 at offset 3)" in skip.reason and "a.png is evaluated without it" in skip.reason
    batch = next(batches(ds.samples("text"), 16, 4, []))
    assert batch.ids == ["a.png", "b.png"]  # the image itself is still evaluated
    assert "text" not in batch.meta[0] and batch.meta[1]["text"] == "good text"


def test_symlink_loops_and_dangling_links_are_listed_as_skipped(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(root / "sub" / "img.png")
    (root / "sub" / "back").symlink_to(root, target_is_directory=True)  # a loop through a folder
    (root / "again").symlink_to(root / "sub", target_is_directory=True)  # a second way to one folder
    (root / "gone.png").symlink_to(tmp_path / "missing.png")
    (root / "self.png").symlink_to(root / "self.png")
    (root / "ping.png").symlink_to(root / "pong.png")
    (root / "pong.png").symlink_to(root / "ping.png")
    ds = FolderDataset(root)
    assert [s.id for s in ds.samples("photos")] == ["again/img.png"]  # walked once, through the first name
    reasons = {s.id: s.reason for s in ds.skipped()}
    assert reasons == {
        "again/back/": "symlink loop: leads back to the dataset root",
        "gone.png": f"dangling symlink: its target {tmp_path / 'missing.png'} does not exist",
        "ping.png": "symlink loop: the link leads back to itself",
        "pong.png": "symlink loop: the link leads back to itself",
        "self.png": "symlink loop: the link leads back to itself",
        "sub/": "the same folder as again/, which is walked instead",
    }


def test_only_unreadable_user_files_are_skipped_not_errors_in_vtbench_code():
    from vtbench.bench.datasets import Sample

    def bug(resolution):
        raise ValueError("a bug in a builtin generator")

    with pytest.raises(ValueError, match="a bug in a builtin generator"):
        list(batches([Sample("detail/x", bug)], 16, 1, []))
