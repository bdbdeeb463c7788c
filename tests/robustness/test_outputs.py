"""Outputs: never an input, never a special or protected file, usual permissions."""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.io.tiff import write_tiff

from .conftest import TINY, assert_refused, tiny_bundle


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (command, the option written, the file it names) for every way an output can name an input.
SAME_FILE = [
    ("predict", "--out", "image"),
    ("predict", "--probabilities", "image"),
    ("predict", "--out", "model"),
    ("predict", "--probabilities", "out"),
    ("predict", "--out", "image-hardlink"),
    ("predict", "--out", "image-symlink"),
    ("train", "--out", "image"),
    ("train", "--out", "labels"),
]


@pytest.mark.parametrize(("command", "option", "target"), SAME_FILE)
def test_an_output_never_replaces_an_input(command, option, target, image_pair, model_file,
                                           tmp_path, cli):
    ip, lp = image_pair
    (tmp_path / "hard.tif").hardlink_to(ip)
    (tmp_path / "soft.tif").symlink_to(ip)
    files = {"image": ip, "labels": lp, "model": model_file, "out": tmp_path / "out.tif",
             "image-hardlink": tmp_path / "hard.tif", "image-symlink": tmp_path / "soft.tif"}
    digests = {p: _digest(p) for p in (ip, lp, model_file)}
    if command == "predict":
        args = {"--model": model_file, "--image": ip, "--out": tmp_path / "out.tif"}
        args[option] = files[target]
        if option == "--probabilities":
            args["--out"] = tmp_path / "out.tif"
        argv = ["predict", *[str(x) for kv in args.items() for x in kv]]
    else:
        argv = ["train", "--image", ip, "--labels", lp, "--out", files[target], *TINY]
    assert_refused(cli(*argv), r"same file|replace an input")
    assert {p: _digest(p) for p in digests} == digests
    assert not (tmp_path / "out.tif").exists()


def test_train_refuses_to_replace_a_model_unless_resumed_or_asked(image_pair, tmp_path, cli):
    ip, lp = image_pair
    good = tmp_path / "good.pt"
    tiny_bundle().save(good)
    digest = _digest(good)
    base = ["train", "--image", ip, "--labels", lp, "--out", good, *TINY]
    assert_refused(cli(*base), r"already exists.*--resume.*--overwrite")
    assert _digest(good) == digest
    assert cli(*base, "--resume", good)[0] == 0  # continuing it is allowed
    assert cli(*base, "--overwrite")[0] == 0


_HELD: list[int] = []


@pytest.fixture(autouse=True)
def _close_held():
    yield
    while _HELD:
        os.close(_HELD.pop())


def _device(tmp_path):
    """A character device of the test's own (a copy of /dev/null's node), so that even a
    writer that replaced devices could not harm the system's; /dev/null where nodes
    cannot be made (not root: then the system's cannot be replaced either)."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return "/dev/null"
    return node


def _bad_out(kind, tmp_path):
    if kind == "folder":
        (tmp_path / "dir.pt").mkdir()
        return tmp_path / "dir.pt"
    if kind == "under a file":
        (tmp_path / "file").write_bytes(b"x")
        return tmp_path / "file" / "m.pt"
    if kind == "read-only folder":
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "m.pt"
    if kind == "read-only file":
        path = tmp_path / "ro.pt"
        tiny_bundle().save(path)
        path.chmod(0o444)
        return path
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo.pt")
        return tmp_path / "fifo.pt"
    if kind == "device":
        return _device(tmp_path)
    if kind == "fd symlink":  # a descriptor of this process (of a file of the test's own)
        fd = os.open(tmp_path / "held", os.O_WRONLY | os.O_CREAT)
        _HELD.append(fd)
        (tmp_path / "fd.pt").symlink_to(f"/proc/self/fd/{fd}")
        return tmp_path / "fd.pt"
    if kind == "empty":
        return ""
    raise AssertionError(kind)


BAD_OUT = ["folder", "under a file", "read-only folder", "read-only file", "fifo", "device",
           "fd symlink", "empty"]


@pytest.mark.parametrize("kind", BAD_OUT)
def test_train_checks_out_before_training(kind, image_pair, tmp_path, cli):
    ip, lp = image_pair
    out = _bad_out(kind, tmp_path)
    try:
        rc, err = cli("train", "--image", ip, "--labels", lp, "--out", out, *TINY,
                      "--overwrite")
    finally:
        for p in tmp_path.iterdir():
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
    assert_refused((rc, err), r"--out")
    assert ".tmp" not in err and "training on" not in err  # refused before anything ran
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    if kind == "device":
        assert stat.S_ISCHR(os.stat(out).st_mode)


@pytest.mark.parametrize("kind", ["fifo", "device", "fd symlink", "read-only file"])
def test_the_writer_refuses_special_and_protected_files(kind, tmp_path):
    out = _bad_out(kind, tmp_path)
    before = os.lstat(out)
    with pytest.raises(InputError, match="not a regular file|a device|a pipe|write-protected"):
        write_tiff(out, np.ones((4, 4), np.uint8))
    after = os.lstat(out)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)


def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "labels.tif"
        write_tiff(path, np.ones((4, 4), np.uint8))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        model = tmp_path / "m.pt"
        tiny_bundle().save(model)
        assert stat.S_IMODE(model.stat().st_mode) == 0o644
        path.chmod(0o640)
        write_tiff(path, np.zeros((4, 4), np.uint8))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_symlink_to_a_file_stays_a_symlink(tmp_path):
    real = tmp_path / "real.tif"
    write_tiff(real, np.ones((4, 4), np.uint8))
    link = tmp_path / "link.tif"
    link.symlink_to(real)
    write_tiff(link, np.full((4, 4), 3, np.uint8))
    assert link.is_symlink()
    import tifffile

    assert tifffile.imread(real).max() == 3


@pytest.mark.parametrize("ids", [[0, 7, 2**32 + 7, 2**33], [0, 70_000], [0, 2**64 - 1],
                                 [0, 255], [0, 65_535], [0, 2**32 - 1]])
def test_the_labels_writer_keeps_every_id(ids, tmp_path):
    from napari_unet._napari.writer import write_labels
    from napari_unet.core.io.tiff import read_tiff

    labels = np.zeros((4, 6), np.uint64 if max(ids) >= 2**63 else np.int64)
    labels.flat[: len(ids)] = ids
    (path,) = write_labels(str(tmp_path / "l.tif"), labels, {})
    back = read_tiff(path).data
    assert back.astype(np.uint64).tolist() == labels.astype(np.uint64).tolist()
    assert back.dtype.itemsize == min(n for n in (1, 2, 4, 8) if max(ids) < 2 ** (8 * n))


def test_the_labels_writer_keeps_every_axis(tmp_path):
    from napari_unet._napari.writer import write_labels
    from napari_unet.core.io.tiff import read_tiff

    tzyx = np.arange(2 * 3 * 5 * 6, dtype=np.uint16).reshape(2, 3, 5, 6)
    (path,) = write_labels(str(tmp_path / "tzyx.tif"), tzyx, {"scale": (1, 2.0, 0.5, 0.5)})
    back = read_tiff(path)
    assert back.axes == "TZYX" and back.data.shape == tzyx.shape
    np.testing.assert_array_equal(back.data, tzyx)
    assert back.scale[1:] == (2.0, 0.5, 0.5)
    one_z = np.ones((1, 5, 6), np.uint8)
    (path,) = write_labels(str(tmp_path / "z1.tif"), one_z, {})
    assert read_tiff(path).data.shape == (1, 5, 6)  # one slice stays a stack
    named = np.ones((3, 5, 6), np.uint8)
    (path,) = write_labels(str(tmp_path / "t.tif"), named, {"axis_labels": ("t", "y", "x")})
    assert read_tiff(path).axes == "TYX"
    with pytest.raises(InputError, match="negative"):
        write_labels(str(tmp_path / "neg.tif"), -np.ones((4, 4), np.int32), {})
    assert not (tmp_path / "neg.tif").exists()
