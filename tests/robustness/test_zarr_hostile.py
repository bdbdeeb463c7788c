"""Damaged and hostile OME-Zarr inputs: one line and exit status 2 from the real command
line, no traceback, no asyncio noise, inputs unchanged, nothing left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import open_image
from napari_unet.core.io.sparse import save_labels_zarr, sparse_labels

from .conftest import assert_refused
from .hostile import cli, edit_json, ome_zarr, snapshot, temporaries


def _truncate(path: Path) -> None:
    path.write_text(path.read_text()[:30])


def _first_chunk(level: Path) -> Path:
    return next(p for p in sorted(level.rglob("*")) if p.is_file() and p.name[0].isdigit())


CASES = {
    "truncated .zarray (v2)": (2, lambda z: _truncate(z / "0" / ".zarray"),
                               r"\.zarray is not valid JSON .*truncated or damaged"),
    "truncated zarr.json (v3)": (3, lambda z: _truncate(z / "0" / "zarr.json"),
                                 r"zarr\.json is not valid JSON .*truncated or damaged"),
    "bytes dtype |S4": (2, lambda z: edit_json(z / "0" / ".zarray",
                                               lambda m: m.update(dtype="|S4")),
                        r'declared as "\|S4", not numbers'),
    "text dtype (v3)": (3, lambda z: edit_json(z / "0" / "zarr.json",
                                               lambda m: m.update(data_type="string")),
                        r'declared as "string", not numbers'),
    "negative shape": (2, lambda z: edit_json(z / "0" / ".zarray",
                                              lambda m: m.update(shape=[-64, 64])),
                       r"declares the shape \[-64, 64\]"),
    "level path with ..": (2, lambda z: edit_json(
        z / ".zattrs", lambda m: m["multiscales"][0]["datasets"][0].update(
            path="../other.zarr/0")), r"level path '\.\./other\.zarr/0', which leaves"),
    "absolute level path": (2, lambda z: edit_json(
        z / ".zattrs", lambda m: m["multiscales"][0]["datasets"][0].update(path="/etc")),
        r"level path '/etc', which leaves"),
    "a missing chunk": (2, lambda z: _first_chunk(z / "0").unlink(),
                        r"1 of its 4 chunks are missing .*--missing-chunks fill"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_zarr_gives_one_line(case, tmp_path, model_file):
    fmt, damage, message = CASES[case]
    image = ome_zarr(tmp_path / "image.ome.zarr", fmt=fmt)
    ome_zarr(tmp_path / "other.zarr")  # what a '..' path would reach: never read
    damage(image)
    before = snapshot(tmp_path)
    result = cli("predict", "--image", image, "--model", model_file,
                 "--out", tmp_path / "out.tif")
    assert_refused(result, message)
    assert "Traceback" not in result[1]
    assert snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not temporaries(tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_zarr_is_an_input_error_for_the_reader(case, tmp_path):
    """What the napari reader and the Predict panel call: a sentence, not a traceback."""
    fmt, damage, message = CASES[case]
    image = ome_zarr(tmp_path / "image.ome.zarr", fmt=fmt)
    damage(image)
    with pytest.raises(InputError, match=message.split(" .*")[0].replace("\\.", ".")[:12]):
        open_image(image)


def test_missing_chunks_read_as_fill_when_asked(tmp_path, model_file):
    image = ome_zarr(tmp_path / "image.ome.zarr")
    _first_chunk(image / "0").unlink()
    rc, err = cli("predict", "--image", image, "--model", model_file, "--missing-chunks",
                  "fill", "--out", tmp_path / "out.tif")
    assert rc == 0, err
    assert (tmp_path / "out.tif").is_file()


def test_sparse_labels_of_this_project_may_omit_chunks(tmp_path):
    """Labels saved by core.io.sparse store only the chunks painted: not refused."""
    labels = sparse_labels((2, 600, 600))
    labels[0, 10:20, 10:20] = 2
    path = save_labels_zarr(tmp_path / "strokes.ome.zarr", labels)
    opened = open_image(path, lazy=True)
    assert opened.labels_hint is True
    assert int(np.asarray(opened.data).max()) == 2


def test_a_folder_declaring_an_exabyte_is_refused_at_once(tmp_path, model_file):
    """25 KB on disk, 10**6 x 10**6 x 10**6 declared: refused before any read."""
    image = ome_zarr(tmp_path / "huge.ome.zarr", shape=(10**6,) * 3, chunks=(1, 1024, 1024),
                     data=False)
    result = cli("predict", "--image", image, "--model", model_file,
                 "--out", tmp_path / "out.ome.zarr")
    assert_refused(result, r"chunks are missing .*declares 1000000x1000000x1000000 uint16 "
                           r"\(1\.7 EiB\)")
    assert not (tmp_path / "out.ome.zarr").exists() and not temporaries(tmp_path)


def _corrupt_chunks(image: Path, every: int) -> None:
    chunks = sorted(p for p in (image / "0").rglob("*") if p.is_file() and p.name.isdigit())
    for chunk in chunks[::every]:
        chunk.write_bytes(b"\x28\xb5\x2f\xfd not zstd" * 3)


@pytest.mark.parametrize("lazy", [False, True], ids=["in memory", "lazily"])
def test_corrupt_zstd_chunks_give_one_line_and_no_asyncio_noise(lazy, tmp_path, model_file):
    """zarr reads the chunks of one request concurrently; the others were left running
    when one failed, and asyncio printed hundreds of lines at exit. Three runs each."""
    image = ome_zarr(tmp_path / "image.ome.zarr", fmt=3, shape=(2, 1024, 1024),
                     chunks=(1, 128, 128))
    _corrupt_chunks(image, every=5)
    env_limit = {"NAPARI_UNET_MAX_IMAGE_BYTES": "1000"} if lazy else {}
    old = {k: os.environ.get(k) for k in env_limit}
    os.environ.update(env_limit)
    try:
        for _ in range(3):
            result = cli("predict", "--image", image, "--model", model_file,
                         "--out", tmp_path / "out.tif")
            assert_refused(result, r"image\.ome\.zarr: .*cannot be read \(.*[Zz]std.*\); the "
                                   "file is damaged")
            assert "Task was destroyed" not in result[1]
            assert "cannot schedule" not in result[1]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not (tmp_path / "out.tif").exists() and not temporaries(tmp_path)
