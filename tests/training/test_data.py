"""The CIFAR-10 reader: both layouts, verification, safe unpickling and the download path."""

import hashlib
import http.server
import io
import pickle
import shutil
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from train import data

RECORDS_PER_BATCH = 20  # small synthetic batches: 10 classes x 2 images


def synthetic_split(seed: int) -> data.Split:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (RECORDS_PER_BATCH, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(RECORDS_PER_BATCH, dtype=np.uint8) % 10
    return data.Split(images, labels)


def binary_records(split: data.Split) -> bytes:
    planes = split.images.transpose(0, 3, 1, 2).reshape(len(split), -1)
    return np.concatenate([split.labels[:, None], planes], axis=1).tobytes()


def write_binary_layout(directory: Path) -> dict[str, data.Split]:
    directory.mkdir(parents=True, exist_ok=True)
    splits = {}
    for seed, name in enumerate([*data.TRAIN_FILES, data.TEST_FILE]):
        splits[name] = synthetic_split(seed)
        (directory / f"{name}.bin").write_bytes(binary_records(splits[name]))
    return splits


def write_python_layout(directory: Path) -> dict[str, data.Split]:
    directory.mkdir(parents=True, exist_ok=True)
    splits = {}
    for seed, name in enumerate([*data.TRAIN_FILES, data.TEST_FILE]):
        split = splits[name] = synthetic_split(seed)
        batch = {
            b"data": split.images.transpose(0, 3, 1, 2).reshape(len(split), -1),
            b"labels": [int(x) for x in split.labels],
            b"batch_label": b"synthetic",
        }
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
    return splits


def test_reads_the_shared_binary_copy_with_published_facts(cifar10_dir):
    dataset = data.load(cifar10_dir)
    assert dataset.train.images.shape == (50000, 32, 32, 3)
    assert dataset.test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(dataset.test.labels).tolist() == [1000] * 10
    # The README's published per-channel mean of the test split pins the RGB channel order.
    mean = dataset.test.images.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [126.02464141, 123.70850420, 114.85431865], atol=1e-6)


@pytest.mark.parametrize("writer", [write_binary_layout, write_python_layout])
def test_binary_and_python_layouts_decode_to_the_same_images(tmp_path, writer):
    splits = writer(tmp_path / "layout")
    dataset = data.load(tmp_path / "layout")
    np.testing.assert_array_equal(dataset.test.images, splits[data.TEST_FILE].images)
    np.testing.assert_array_equal(
        dataset.train.labels[:RECORDS_PER_BATCH], splits["data_batch_1"].labels
    )
    assert len(dataset.train) == 5 * RECORDS_PER_BATCH


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    write_python_layout(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path),))

    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(data.DataError, match=r"refusing to load shutil\.rmtree"):
        data.load(tmp_path)
    assert (tmp_path / "data_batch_1").exists()


def test_truncated_batch_is_reported_with_its_name(tmp_path):
    write_binary_layout(tmp_path)
    batch = tmp_path / "data_batch_2.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    with pytest.raises(data.DataError, match=r"data_batch_2\.bin: .* not a whole number"):
        data.load(tmp_path)


def test_label_byte_of_ten_is_rejected(tmp_path):
    write_binary_layout(tmp_path)
    batch = tmp_path / "test_batch.bin"
    content = bytearray(batch.read_bytes())
    content[3 * data.RECORD_BYTES] = 10
    batch.write_bytes(bytes(content))
    with pytest.raises(data.DataError, match=r"record 3 has label 10"):
        data.load(tmp_path)


def test_checksum_mismatch_is_caught_by_sha256sums(tmp_path):
    write_binary_layout(tmp_path)
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in sorted(tmp_path.glob("*.bin"))
    ]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    data.load(tmp_path)  # intact: passes
    batch = tmp_path / "data_batch_4.bin"
    content = bytearray(batch.read_bytes())
    content[100] ^= 0xFF  # same size, one pixel changed
    batch.write_bytes(bytes(content))
    with pytest.raises(data.DataError, match=r"data_batch_4\.bin: checksum mismatch"):
        data.load(tmp_path)


def test_missing_directory_and_missing_batch_are_one_line_errors(tmp_path):
    with pytest.raises(data.DataError, match="not a directory"):
        data.load(tmp_path / "nowhere")
    write_binary_layout(tmp_path)
    (tmp_path / "data_batch_5.bin").unlink()
    with pytest.raises(data.DataError, match=r"data_batch_5\.bin: missing"):
        data.load(tmp_path)


def test_validation_is_held_out_of_training_balanced_and_disjoint(cifar10_dir):
    dataset = data.load(cifar10_dir)
    train, validation = data.stratified_split(dataset.train)
    assert (len(train), len(validation)) == (45000, 5000)
    assert np.bincount(validation.labels).tolist() == [500] * 10
    train_keys = {image.tobytes() for image in train.images[::1]}
    assert not any(image.tobytes() in train_keys for image in validation.images)


def archive_bytes(source: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source, arcname=data.ARCHIVE_FOLDER)
    return buffer.getvalue()


@pytest.fixture()
def archive_server(tmp_path):
    """A local HTTP server serving a small CIFAR-10-shaped archive."""
    splits = write_binary_layout(tmp_path / "source")
    payload = archive_bytes(tmp_path / "source")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cifar-10-binary.tar.gz", payload, splits
    server.shutdown()


def test_download_verifies_md5_and_extracts_a_readable_copy(tmp_path, archive_server):
    url, payload, splits = archive_server
    folder = data.fetch_archive(url, hashlib.md5(payload).hexdigest(), tmp_path / "cache")
    assert folder == tmp_path / "cache" / data.ARCHIVE_FOLDER
    np.testing.assert_array_equal(data.load(folder).test.images, splits[data.TEST_FILE].images)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [data.ARCHIVE_FOLDER]


def test_download_with_wrong_md5_leaves_nothing_behind(tmp_path, archive_server):
    url, _, _ = archive_server
    with pytest.raises(data.DataError, match="does not match the published"):
        data.fetch_archive(url, "0" * 32, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_load_downloads_into_the_cache_when_no_folder_is_given(
    tmp_path, archive_server, monkeypatch
):
    url, payload, splits = archive_server
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "ARCHIVE_URL", url)
    monkeypatch.setattr(data, "ARCHIVE_MD5", hashlib.md5(payload).hexdigest())
    dataset = data.load()
    assert dataset.source == tmp_path / "xdg" / "edge-cifar" / data.ARCHIVE_FOLDER
    np.testing.assert_array_equal(
        dataset.train.labels[:RECORDS_PER_BATCH], splits["data_batch_1"].labels
    )
