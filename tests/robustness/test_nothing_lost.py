"""Nothing lost: inputs are never written to, and files are replaced only when complete."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tifffile

from napari_unet.core.io.tiff import read_tiff, write_tiff
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer

from .conftest import TINY, sparse_annotations, tiny_bundle


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_and_prediction_never_write_into_their_inputs():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (3, 40, 40)).astype(np.float32)
    annotations = sparse_annotations(image.shape, slices=[0, 2])
    for array in (image, annotations):
        array.flags.writeable = False  # any write, even in place, would raise
    before = image.tobytes(), annotations.tobytes()
    data = TrainingData.from_annotations([image], [annotations])
    trainer = Trainer(tiny_bundle(), data, TrainConfig(iterations=3, batch_size=2, patch_size=32,
                                                       device="cpu"))
    list(trainer.fit())
    Predictor(trainer.bundle(), device="cpu").predict(image, probabilities=True, instances=True)
    assert (image.tobytes(), annotations.tobytes()) == before


def test_the_command_line_leaves_its_input_files_alone(image_pair, tmp_path, cli):
    ip, lp = image_pair
    digests = _digest(ip), _digest(lp)
    model = tmp_path / "m.pt"
    assert cli("train", "--image", ip, "--labels", lp, "--out", model, *TINY)[0] == 0
    assert cli("predict", "--model", model, "--image", ip, "--out", tmp_path / "p.tif",
               "--instances")[0] == 0
    assert cli("evaluate", "--model", model, "--image", ip, "--labels", lp,
               "--labels-kind", "instance")[0] == 0
    assert (_digest(ip), _digest(lp)) == digests


def test_a_failed_training_leaves_the_previous_model(image_pair, tmp_path, cli):
    ip, lp = image_pair
    model = tmp_path / "m.pt"
    tiny_bundle().save(model)
    digest = _digest(model)
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((3, 40, 40), np.uint8))
    assert cli("train", "--image", ip, "--labels", blank, "--out", model, *TINY)[0] == 2
    assert _digest(model) == digest


def test_label_files_are_written_atomically(tmp_path, monkeypatch, crash_mid_write):
    path = tmp_path / "labels.tif"
    good = np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) % 7
    write_tiff(path, good)
    digest = _digest(path)
    crash_mid_write()
    with pytest.raises(OSError, match="No space left"):
        write_tiff(path, np.zeros((40, 40), np.uint8))
    assert _digest(path) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"]  # no temporary left
    monkeypatch.undo()
    np.testing.assert_array_equal(read_tiff(path).data, good)


def test_prediction_that_cannot_be_written_leaves_the_previous_labels(image_pair, model_file,
                                                                     tmp_path, cli, crash_mid_write):
    ip, _ = image_pair
    out = tmp_path / "labels.tif"
    assert cli("predict", "--model", model_file, "--image", ip, "--out", out)[0] == 0
    digest = _digest(out)
    crash_mid_write()
    rc, err = cli("predict", "--model", model_file, "--image", ip, "--out", out)
    assert rc == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert _digest(out) == digest
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
