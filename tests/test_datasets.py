"""Dataset loading: real archives, synthetic CIFAR-100, folder datasets, hostile input.

Expensive decodes (CIFAR-10, flowers) happen once per session: module fixtures load
into the session cache and later loads hit it.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from archives import add_bytes, cifar100_archive, write_tar
from PIL import Image

from benchmark import data
from benchmark.data import DATASETS, FLOWERS17_CLASSES, Loaded, Request, load_dataset
from benchmark.data.archive import file_md5, restricted_load, safe_extract
from benchmark.errors import UserError

# ------------------------------------------------------------------------------ helpers


def _planar_to_nhwc(data: np.ndarray) -> np.ndarray:
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _save(path: Path, img: Image.Image, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


# ----------------------------------------------------------------------------- CIFAR-10


@pytest.fixture(scope="module")
def cifar10(shared_data, session_cache):
    # Module fixtures run before the autouse env isolation: pass the cache explicitly.
    return load_dataset("cifar10", data_dir=shared_data, cache_dir=session_cache)


def test_cifar10_shapes_classes_and_stratified_val(cifar10):
    assert cifar10.sizes() == {"train": 9000, "val": 1000, "test": 2000}
    assert cifar10.image_shape == (32, 32, 3) and cifar10.n_classes == 10
    assert "airplane" in cifar10.class_names and cifar10.class_names[0] == "airplane"
    for x, y in [(cifar10.x_train, cifar10.y_train), (cifar10.x_val, cifar10.y_val)]:
        assert x.dtype == np.uint8 and y.dtype == np.int32 and x.flags.c_contiguous
    assert np.bincount(cifar10.y_val).tolist() == [100] * 10
    assert np.bincount(cifar10.y_train).tolist() == [900] * 10
    assert re.fullmatch(r"[0-9a-f]{16}", cifar10.digest), cifar10.digest


def test_cifar10_test_set_is_the_archive_test_batch_untouched(cifar10, shared_data):
    with tarfile.open(shared_data / "cifar-10-python.tar.gz") as tar:
        raw = pickle.load(tar.extractfile("cifar-10-batches-py/test_batch"), encoding="bytes")
    np.testing.assert_array_equal(cifar10.x_test, _planar_to_nhwc(raw[b"data"]))
    np.testing.assert_array_equal(cifar10.y_test, raw[b"labels"])


def test_cifar10_second_load_same_digest(cifar10, shared_data, monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr("benchmark.data.cifar.decode_cifar", no_decode)
    again = load_dataset("cifar10", data_dir=shared_data)  # BENCHMARK_CACHE_DIR = session
    assert again.digest == cifar10.digest
    np.testing.assert_array_equal(again.x_val, cifar10.x_val)


def test_max_train_samples_is_stratified_and_keeps_val_and_test(cifar10, shared_data):
    small = load_dataset("cifar10", data_dir=shared_data, max_train_samples=500)
    assert np.bincount(small.y_train).tolist() == [50] * 10
    np.testing.assert_array_equal(small.x_val, cifar10.x_val)
    np.testing.assert_array_equal(small.y_test, cifar10.y_test)
    assert small.digest != cifar10.digest
    with pytest.raises(UserError, match="max_train_samples"):
        load_dataset("cifar10", data_dir=shared_data, max_train_samples=0)


def test_cifar10_from_extracted_folder_is_identical(cifar10, shared_data, tmp_path):
    data_dir = tmp_path / "data"
    with tarfile.open(shared_data / "cifar-10-python.tar.gz") as tar:
        tar.extractall(data_dir, filter="data")
    from_folder = load_dataset("cifar10", data_dir=data_dir)
    assert from_folder.source == str(data_dir / "cifar-10-batches-py")
    assert from_folder.digest == cifar10.digest
    np.testing.assert_array_equal(from_folder.x_train, cifar10.x_train)
    np.testing.assert_array_equal(from_folder.y_test, cifar10.y_test)


def test_cifar10_resized(cifar10, shared_data):
    big = load_dataset("cifar10", data_dir=shared_data, image_size=48, max_train_samples=100)
    assert big.image_shape == (48, 48, 3) and big.x_test.dtype == np.uint8
    np.testing.assert_array_equal(big.y_test, cifar10.y_test)


# ---------------------------------------------------------------------------- CIFAR-100


def test_cifar100_fine_and_coarse_from_synthetic_archive(tmp_path):
    _, parts = cifar100_archive(tmp_path)
    fine = load_dataset("cifar100", data_dir=tmp_path, val_fraction=0.2)
    assert fine.n_classes == 100 and fine.class_names[7] == "fine_07"
    assert fine.sizes() == {"train": 400, "val": 100, "test": 100}
    assert np.bincount(fine.y_val).tolist() == [1] * 100
    np.testing.assert_array_equal(fine.x_test, _planar_to_nhwc(parts["test"][b"data"]))

    coarse = load_dataset("cifar100", data_dir=tmp_path, val_fraction=0.2, label_mode="coarse")
    assert coarse.n_classes == 20 and coarse.class_names[0] == "coarse_00"
    np.testing.assert_array_equal(coarse.y_test, np.asarray(parts["test"][b"coarse_labels"]))
    assert np.bincount(coarse.y_val).tolist() == [5] * 20  # stratified on coarse labels


def test_coarse_label_mode_only_for_cifar100(shared_data):
    with pytest.raises(UserError, match="coarse"):
        load_dataset("cifar10", data_dir=shared_data, label_mode="coarse")


def test_cifar100_found_in_keras_cache_without_network(tmp_path, monkeypatch):
    cifar100_archive(Path(os.environ["KERAS_HOME"]) / "datasets")

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download although the Keras cache has the archive")

    monkeypatch.setattr("benchmark.data.upstream.download", no_network)
    ds = load_dataset("cifar100", val_fraction=0.2)
    assert ds.sizes()["test"] == 100


def test_download_uses_keras_get_file_with_upstream_md5(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")
    archive, _ = cifar100_archive(tmp_path / "served")
    calls = []

    def fake_get_file(fname, origin, file_hash, cache_subdir, cache_dir):
        calls.append((fname, origin, file_hash))
        dest = Path(cache_dir) / cache_subdir / fname
        shutil.copy(archive, dest)
        return str(dest)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    monkeypatch.setattr("benchmark.data.upstream.reachable", lambda url: None)  # "online"
    ds = load_dataset("cifar100", val_fraction=0.2)
    assert calls == [
        (
            "cifar-100-python.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        )
    ]
    assert ds.source.startswith("https://www.cs.toronto.edu/") and ds.n_classes == 100


def test_offline_a_missing_archive_is_one_line_and_keras_prints_nothing(monkeypatch, capsys):
    """No connection to the host: the one-line error, and not Keras' "Downloading data
    from URL" above it (Keras prints that before it tries)."""
    keras = pytest.importorskip("keras")

    def offline(address, timeout=None):
        raise OSError(-2, "Name or service not known")

    def get_file(*args, **kwargs):
        raise AssertionError("Keras was asked to download although the host is unreachable")

    monkeypatch.setattr("benchmark.data.upstream.socket.create_connection", offline)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.raises(UserError) as err:
        load_dataset("cifar100", val_fraction=0.2)
    message = str(err.value)
    assert "\n" not in message and "cifar-100-python.tar.gz not found in" in message
    assert "Name or service not known" in message and "--data-dir DIR" in message
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------- flowers17


@pytest.fixture(scope="module")
def flowers(shared_data, session_cache):
    return load_dataset("flowers17", data_dir=shared_data, image_size=32, cache_dir=session_cache)


def test_flowers17_seeded_40_20_20_split(flowers):
    assert flowers.sizes() == {"train": 680, "val": 340, "test": 340}
    assert flowers.class_names == FLOWERS17_CLASSES and flowers.class_names[0] == "Daffodil"
    assert flowers.image_shape == (32, 32, 3) and flowers.x_train.dtype == np.uint8
    assert np.bincount(flowers.y_train).tolist() == [40] * 17
    assert np.bincount(flowers.y_val).tolist() == [20] * 17
    assert np.bincount(flowers.y_test).tolist() == [20] * 17


def test_flowers17_second_load_reads_cache(flowers, shared_data, monkeypatch):
    def no_decode(*args, **kwargs):
        raise AssertionError("decoded JPEGs again despite the cache")

    monkeypatch.setattr("benchmark.data.flowers17.decode_images", no_decode)
    again = load_dataset("flowers17", data_dir=shared_data, image_size=32)
    assert again.digest == flowers.digest


def test_flowers17_official_splits_file_and_bad_split(flowers, shared_data, tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    (tmp_path / "17flowers.tgz").symlink_to(shared_data / "17flowers.tgz")  # cached already
    blocks = np.arange(1360).reshape(17, 80) + 1  # 1-based, as upstream
    scipy_io.savemat(
        tmp_path / "datasplits.mat",
        {"trn1": blocks[:, :40].ravel(), "val1": blocks[:, 40:60].ravel(),
         "tst1": blocks[:, 60:].ravel()},
    )  # fmt: skip
    official = load_dataset("flowers17", data_dir=tmp_path, image_size=32)
    assert official.sizes() == {"train": 680, "val": 340, "test": 340}
    assert official.digest != flowers.digest
    with pytest.raises(UserError, match="trn2"):
        load_dataset("flowers17", data_dir=tmp_path, image_size=32, split=2)
    with pytest.raises(UserError, match="`split` should be 1, 2 or 3. Received: split=4"):
        load_dataset("flowers17", data_dir=tmp_path, image_size=32, split=4)


# ------------------------------------------------------------------------ folder:PATH


def _class_a_red(d: Path) -> None:
    red = Image.new("RGB", (40, 24), (255, 0, 0))
    _save(d / "rgb.png", red, "PNG")
    _save(d / "rgb.jpg", red, "JPEG")
    _save(d / "rgba.png", Image.new("RGBA", (30, 30), (255, 0, 0, 128)), "PNG")
    _save(d / "cmyk.jpg", Image.new("CMYK", (24, 40), (0, 255, 255, 0)), "JPEG")
    _save(d / "palette.png", red.convert("P"), "PNG")


def _class_gray(d: Path, n: int = 5) -> None:
    for i in range(n):
        _save(d / f"g{i}.png", Image.new("L", (20 + i, 32), 100), "PNG")


def test_folder_dataset_converts_to_rgb_and_skips_bad_files(tmp_path, caplog):
    root = tmp_path / "imgs"
    _class_a_red(root / "a_red")
    _class_gray(root / "b_gray")
    (root / "a_red" / "notes.txt").write_text("not an image")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(good, "JPEG")
    (root / "a_red" / "truncated.jpg").write_bytes(good.getvalue()[:300])

    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        ds = load_dataset(f"folder:{root}", image_size=16)
    assert ds.name == f"folder:{root}" and ds.class_names == ("a_red", "b_gray")
    assert ds.sizes() == {"train": 6, "val": 2, "test": 2}  # 5 readable per class: 3/1/1
    assert ds.image_shape == (16, 16, 3)
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test]).astype(np.int16)
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    red, gray = x[y == 0], x[y == 1]
    assert (red[..., 0] > 200).all() and (red[..., 1:] < 60).all()
    assert (gray == 100).all()  # L -> RGB keeps value, all channels equal
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2" in warnings[0]


def test_folder_dataset_with_train_test_subfolders(tmp_path):
    root = tmp_path / "split"
    for part, n in (("train", 4), ("test", 2)):
        _class_gray(root / part / "x", n)
        _class_gray(root / part / "y", n)
    ds = load_dataset(f"folder:{root}", image_size=8, val_fraction=0.25)
    assert ds.sizes() == {"train": 6, "val": 2, "test": 4}
    assert np.bincount(ds.y_test).tolist() == [2, 2]


def test_folder_dataset_bad_layouts(tmp_path):
    root = tmp_path / "bad"
    _class_gray(root / "one")
    with pytest.raises(UserError, match="at least 2 class"):
        load_dataset(f"folder:{root}")
    (root / "empty").mkdir()
    with pytest.raises(UserError, match=r"empty.*is empty"):
        load_dataset(f"folder:{root}")
    _class_gray(root / "empty", n=2)
    with pytest.raises(UserError, match="too few"):
        load_dataset(f"folder:{root}")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


# ------------------------------------------------------------------ the extension point


@pytest.fixture
def tiny_source():
    """A synthetic source registered for one test, removed from the registry after it."""

    @DATASETS.register(name="tiny", image_size=4)
    def tiny(req: Request) -> Loaded:
        size = req.image_size or 4
        x = np.arange(30 * size * size * 3, dtype=np.int64).reshape(30, size, size, 3) % 256
        y = np.repeat(np.arange(3), 10)  # 10 images per class
        part = np.tile(np.arange(10), 3)  # per class: 0-5 train, 6-7 val, 8-9 test
        splits = {
            name: (x[(part >= lo) & (part < hi)], y[(part >= lo) & (part < hi)])
            for name, lo, hi in (("train", 0, 6), ("val", 6, 8), ("test", 8, 10))
        }
        return Loaded(("a", "b", "c"), splits, "synthetic")

    yield tiny
    DATASETS.unregister("tiny")
    assert "tiny" not in DATASETS and "tiny" not in DATASETS.known()


def test_a_new_dataset_is_one_registered_function(tiny_source):
    ds = load_dataset("tiny", max_train_samples=9)  # subset, dtypes, digest: load_dataset's
    assert (ds.name, ds.class_names, ds.source) == ("tiny", ("a", "b", "c"), "synthetic")
    assert ds.sizes() == {"train": 9, "val": 6, "test": 6}
    assert np.bincount(ds.y_train).tolist() == [3, 3, 3] and ds.y_train.dtype == np.int32
    assert ds.image_shape == (4, 4, 3) and ds.x_train.dtype == np.uint8
    assert len(ds.digest) == 16
    assert load_dataset("tiny", image_size=6).image_shape == (6, 6, 3)
    assert data.default_image_size("tiny") == 4 and data.is_builtin("tiny")
    assert DATASETS.known().endswith("flowers17, tiny, folder:PATH")


def test_folder_is_a_registered_family():
    assert data.parse("folder:/x") == ("folder", "/x")
    assert data.parse("cifar10") == ("cifar10", None)
    assert data.source_name("folder:/data/pets") == "folder"
    assert data.source_name("cifar100") == "cifar100"
    assert not data.is_builtin("folder:/x") and data.is_builtin("flowers17")
    assert not data.is_builtin("mnist") and "folder:/x" in DATASETS and "mnist" not in DATASETS
    with pytest.raises(UserError, match="needs a path: folder:PATH"):
        load_dataset("folder:")


# ------------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UserError) as err:
        load_dataset("cifr10")
    assert str(err.value) == (
        "unknown dataset 'cifr10'; known: cifar10, cifar100, flowers17, folder:PATH"
    )


def test_missing_data_dir(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nope")


def test_missing_data_offline_names_file_and_flag(tmp_path, monkeypatch):
    keras = pytest.importorskip("keras")

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("benchmark.data.upstream.reachable", lambda url: None)  # then fails
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "empty")
    msg = str(err.value)
    assert "cifar-10-python.tar.gz not found" in msg and "--data-dir" in msg
    assert "name resolution" in msg and "\n" not in msg


def test_truncated_archive_is_a_user_error_and_leaves_no_cache(shared_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with open(shared_data / "cifar-10-python.tar.gz", "rb") as f:
        (data / "cifar-10-python.tar.gz").write_bytes(f.read(1 << 20))
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="corrupt or truncated archive .*cifar-10-python"):
        load_dataset("cifar10", data_dir=data, cache_dir=cache)
    assert list((cache / "extracted").iterdir()) == []


@pytest.mark.parametrize(
    ("members", "missing"),
    [
        ({"readme.txt": b"hello"}, "cifar-10-batches-py/"),
        (
            {"cifar-10-batches-py/batches.meta": pickle.dumps({b"label_names": [b"a", b"b"]})},
            "cifar-10-batches-py/data_batch_1",
        ),
    ],
)
def test_wrong_layout_archive(tmp_path, members, missing):
    write_tar(tmp_path / "cifar-10-python.tar.gz", members)
    with pytest.raises(UserError, match=f"not the upstream layout: missing {missing}"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_unwritable_cache_names_env_var(tmp_path):
    cifar100_archive(tmp_path)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="BENCHMARK_CACHE_DIR"):
        load_dataset("cifar100", data_dir=tmp_path, cache_dir=tmp_path / "a_file" / "cache")


# ---------------------------------------------------------------------- hostile files


def _hostile_member(kind: str, tmp_path: Path) -> tarfile.TarInfo:
    if kind == "dotdot":
        info = tarfile.TarInfo("../evil")
    elif kind == "absolute":
        info = tarfile.TarInfo(str(tmp_path / "abs_evil"))
    elif kind == "symlink":
        info = tarfile.TarInfo("passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info = tarfile.TarInfo("inner/link")
        info.type, info.linkname = tarfile.LNKTYPE, "../../evil"
    else:  # device
        info = tarfile.TarInfo("dev")
        info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_safe_extract_refuses_hostile_members(tmp_path, kind):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        add_bytes(tar, "ok.txt", b"fine")  # extracted first, must be cleaned up
        info = _hostile_member(kind, tmp_path)
        if info.isreg():
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            tar.addfile(info)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UserError, match=r"refusing to extract .*evil\.tar"):
        safe_extract(archive, out / "target")
    assert list(out.iterdir()) == []  # no target, no temp dir, no ../evil
    assert not (tmp_path / "abs_evil").exists() and not (tmp_path / "evil").exists()


def test_safe_extract_keeps_internal_links(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        add_bytes(tar, "d/a.txt", b"data")
        link = tarfile.TarInfo("d/b.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "a.txt"
        tar.addfile(link)
    target = safe_extract(archive, tmp_path / "t")
    assert (target / "d" / "b.txt").read_bytes() == b"data"
    assert safe_extract(archive, tmp_path / "t") == target  # existing = complete: reused


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_load_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _RunsCommand(marker)})
    with pytest.raises(UserError, match=r"refusing to unpickle .*system"):
        restricted_load(io.BytesIO(payload))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_load_reads_numpy_batches(protocol):
    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [0, 1]}
    loaded = restricted_load(io.BytesIO(pickle.dumps(batch, protocol=protocol)))
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])
    assert loaded[b"labels"] == [0, 1]


def test_file_md5_matches_hashlib(tmp_path):
    import hashlib

    f = tmp_path / "blob"
    f.write_bytes(os.urandom(3 << 20))
    assert file_md5(f, chunk_size=1 << 16) == hashlib.md5(f.read_bytes()).hexdigest()


def test_default_image_size_and_cache_root(tmp_path, monkeypatch):
    assert data.default_image_size("cifar100") == 32
    assert data.default_image_size("flowers17") == 64
    assert data.default_image_size("folder:/x") == 64
    with pytest.raises(UserError, match="unknown dataset"):
        data.default_image_size("mnist")
    assert data.cache_root(tmp_path / "c") == tmp_path / "c"
    monkeypatch.setenv("BENCHMARK_CACHE_DIR", str(tmp_path / "env"))
    assert data.cache_root() == tmp_path / "env"
    monkeypatch.delenv("BENCHMARK_CACHE_DIR")
    assert data.cache_root() == Path.home() / ".cache" / "cnn-benchmark"


def _squares(d: Path, n: int, size: tuple[int, int], value: int) -> None:
    for i in range(n):
        _save(d / f"{i}.png", Image.new("RGB", size, (value, value, value)), "PNG")


def test_folder_default_size_is_the_images_own_else_64(tmp_path, caplog):
    same = tmp_path / "same"
    _squares(same / "a", 5, (24, 24), 10)
    _squares(same / "b", 5, (24, 24), 200)
    with caplog.at_level(logging.INFO, logger="benchmark.data"):
        ds = load_dataset(f"folder:{same}")
        again = load_dataset(f"folder:{same}")  # from the cache: the same size, the same line
    assert ds.image_shape == again.image_shape == (24, 24, 3)
    notes = [r.getMessage() for r in caplog.records if "image size" in r.getMessage()]
    assert notes == ["image size 24 px: the images' own (all 24x24)"] * 2
    assert load_dataset(f"folder:{same}", image_size=8).image_shape == (8, 8, 3)

    mixed = tmp_path / "mixed"
    _squares(mixed / "a", 5, (24, 24), 10)
    _squares(mixed / "b", 5, (32, 20), 200)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="benchmark.data"):
        ds = load_dataset(f"folder:{mixed}")
    assert ds.image_shape == (64, 64, 3)
    assert any("image size 64 px: the images differ in size (e.g. 24x24, 32x20)" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_folder_skips_dangling_links_and_links_out_of_the_root(tmp_path, caplog):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    _squares(root / "a", 5, (8, 8), 10)
    _squares(root / "b", 5, (8, 8), 200)
    _squares(outside, 2, (8, 8), 99)
    (root / "a" / "gone.png").symlink_to(tmp_path / "no-such-file.png")
    (root / "a" / "secret.png").symlink_to(outside / "0.png")
    (root / "b" / "copy.png").symlink_to(root / "a" / "0.png")  # stays inside: kept
    (root / "c").symlink_to(outside, target_is_directory=True)  # a class that lives outside
    (root / "c_local").mkdir()
    _squares(root / "c_local", 5, (8, 8), 50)
    (root / "c_local" / "loop").symlink_to(root / "c_local", target_is_directory=True)

    with pytest.raises(UserError, match=r"class folder .*/c is empty or missing \(2 unusable"):
        load_dataset(f"folder:{root}")
    (root / "c").unlink()
    with caplog.at_level(logging.WARNING, logger="benchmark.data"):
        ds = load_dataset(f"folder:{root}")
    assert ds.class_names == ("a", "b", "c_local")
    assert sum(ds.sizes().values()) == 16  # 5 + 5 + 1 link inside the root + 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert (
        "skipped 2 files" in warnings[0] and "1 dangling symlinks (e.g. a/gone.png)" in warnings[0]
    )
    assert (
        "1 files reached through links that leave the dataset folder (e.g. a/secret.png)"
        in (warnings[0])
    )


def test_a_class_folder_of_only_sub_folders_is_one_error_naming_it(tmp_path):
    root = tmp_path / "deep"
    for part in ("train", "test"):
        _squares(root / part / "animals" / "cat", 3, (8, 8), 10)
        _squares(root / part / "animals" / "dog", 3, (8, 8), 60)
        _squares(root / part / "vehicles" / "car", 3, (8, 8), 200)
    with pytest.raises(UserError) as err:
        load_dataset(f"folder:{root}")
    message = str(err.value)
    assert "\n" not in message
    assert f"class folder {root / 'train' / 'animals'} holds only sub-folders (cat, dog)" in message
