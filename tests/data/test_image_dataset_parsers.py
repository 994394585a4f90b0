"""Dataset parsers on tiny files in the real formats, checksums, downloads, augmentation."""

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from fairseq_dynloss.data.augment import random_crop_flip
from fairseq_dynloss.data.cifar import load_cifar_splits, read_cifar_archive
from fairseq_dynloss.data.digits import load_digits_splits
from fairseq_dynloss.data.download import ChecksumError, download, file_digest
from fairseq_dynloss.data.mnist import IDXFormatError, load_mnist_splits, read_idx
from fairseq_dynloss.data.sop import SOPFormatError, load_sop_splits, read_sop_list


def write_idx(path, array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def make_mnist(folder, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    (folder / "mnist").mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / "mnist" / name, array)
    md5 = {name: file_digest(str(folder / "mnist" / name)) for name in arrays}
    return arrays, md5


def test_idx_round_trip_including_wider_types(tmp_path):
    ints = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "ints.gz", ints, code=0x0C)
    assert np.array_equal(read_idx(str(tmp_path / "ints.gz")), ints)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(IDXFormatError, match="declares shape"):
        read_idx(str(tmp_path / "bad"))


def test_mnist_parser_and_split(tmp_path):
    arrays, md5 = make_mnist(tmp_path)
    splits = load_mnist_splits(str(tmp_path), val_size=5, checksums=md5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 10)
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"]))
    together = torch.cat([splits.train.labels, splits.val.labels]).sort().values
    assert torch.equal(together, torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)).sort().values)
    images, labels = splits.test.batch(torch.tensor([0, 3]))
    expected = (arrays["t10k-images-idx3-ubyte.gz"][[0, 3]] / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(images[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_corrupt_mnist_file_fails_its_checksum_naming_file_and_expected_md5(tmp_path):
    _, md5 = make_mnist(tmp_path)
    # The published checksums do not match these tiny files: exactly the corrupt-download case.
    with pytest.raises(ChecksumError) as error:
        load_mnist_splits(str(tmp_path))
    assert "train-images-idx3-ubyte.gz" in str(error.value)
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in str(error.value)
    with pytest.raises(FileNotFoundError, match="task.download=true"):
        load_mnist_splits(str(tmp_path / "nowhere"), checksums=md5)


def make_cifar_tar(path, num_classes, sizes):
    rng = np.random.default_rng(1)
    root = "cifar-10-batches-py" if num_classes == 10 else "cifar-100-python"
    names = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if num_classes == 10
             else ["train", "test"])
    key = b"labels" if num_classes == 10 else b"fine_labels"
    content = {}
    with tarfile.open(path, "w:gz") as archive:
        for name, size in zip(names, sizes):
            batch = {b"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
                     key: rng.integers(0, num_classes, size).tolist(), b"batch_label": b"x"}
            content[name] = batch
            raw = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return content


@pytest.mark.parametrize("num_classes", [10, 100])
def test_cifar_pickled_batches_in_a_tar_gz(tmp_path, num_classes):
    name = "cifar-10-python.tar.gz" if num_classes == 10 else "cifar-100-python.tar.gz"
    sizes = [4, 4, 4, 4, 4, 6] if num_classes == 10 else [20, 6]
    content = make_cifar_tar(tmp_path / name, num_classes, sizes)
    train_x, train_y, test_x, test_y = read_cifar_archive(str(tmp_path / name), num_classes)
    assert train_x.shape == (20, 3, 32, 32) and test_x.shape == (6, 3, 32, 32)
    test_batch = content["test_batch" if num_classes == 10 else "test"]
    assert np.array_equal(test_x.reshape(6, -1), test_batch[b"data"])
    md5 = file_digest(str(tmp_path / name))
    splits = load_cifar_splits(str(tmp_path), num_classes, val_size=5, md5=md5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 6)
    with pytest.raises(ChecksumError, match=name):
        load_cifar_splits(str(tmp_path), num_classes, val_size=5)


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    out = random_crop_flip(images, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[n], w) or torch.equal(out[n], w.flip(-1)) for w in windows)
    same = random_crop_flip(images, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    assert torch.equal(random_crop_flip(images, 0, False), images)


def make_sop(root, train_classes=(1, 1, 2, 2, 3, 3), test_classes=(4, 4, 5)):
    from PIL import Image

    folder = root / "Stanford_Online_Products"
    (folder / "bicycle_final").mkdir(parents=True)
    for split, classes, offset in (("train", train_classes, 0), ("test", test_classes, 100)):
        lines = ["image_id class_id super_class_id path"]
        for i, cls in enumerate(classes):
            rel = f"bicycle_final/{offset + i}_0.JPG"
            Image.fromarray(np.full((20, 24, 3), 10 * cls, dtype=np.uint8)).save(folder / rel, format="JPEG")
            lines.append(f"{offset + i + 1} {cls} 1 {rel}")
        (folder / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_sop_list_files_and_standard_split(tmp_path):
    folder = make_sop(tmp_path)
    paths, classes, supers = read_sop_list(str(folder / "Ebay_train.txt"))
    assert paths[0] == "bicycle_final/0_0.JPG" and classes.tolist() == [1, 1, 2, 2, 3, 3]
    splits = load_sop_splits(str(tmp_path), num_train_classes=3, val_classes=1, resize=16, crop=12)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4, 2, 3)
    assert splits.train.labels.tolist() == [0, 0, 1, 1] and splits.val.labels.tolist() == [0, 0]
    assert splits.test.labels.tolist() == [0, 0, 1]
    images, labels = splits.test.batch(torch.tensor([0, 2]))
    assert images.shape == (2, 3, 12, 12) and labels.tolist() == [0, 1]
    with pytest.raises(SOPFormatError, match="training classes 1..2"):
        load_sop_splits(str(tmp_path), num_train_classes=2)


def test_sop_bad_list_file(tmp_path):
    (tmp_path / "Ebay_train.txt").write_text("image_id class_id path\n1 1 a.jpg\n")
    with pytest.raises(SOPFormatError, match="first line"):
        read_sop_list(str(tmp_path / "Ebay_train.txt"))


def test_download_verifies_before_renaming_and_leaves_nothing_on_failure(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"dataset bytes")
    good = file_digest(str(source))
    target = tmp_path / "local" / "data.bin"
    with pytest.raises(ChecksumError, match="expected 0123"):
        download([source.as_uri()], str(target), md5="0123" + good[4:])
    assert not target.exists() and not list((tmp_path / "local").iterdir())
    download([(tmp_path / "missing").as_uri(), source.as_uri()], str(target), md5=good)
    assert target.read_bytes() == b"dataset bytes"


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_digits_splits(), load_digits_splits()
    assert (len(a.train), len(a.val), len(a.test)) == (1077, 360, 360)
    assert torch.equal(a.test.images, b.test.images)
    assert a.input_shape == (1, 8, 8)
