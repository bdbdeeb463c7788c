"""``predict`` on a folder or a pattern: one output per file, resumable, bad files reported."""

import os

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main


def _single(model, image, out, *extra):
    assert main(["predict", "--model", str(model), "--image", str(image), "--out", str(out),
                 *extra]) == 0
    return tifffile.imread(out)


def test_a_pattern_predicts_each_file_as_one_file_alone(model, folder, tmp_path, capsys):
    out = tmp_path / "out" / "deeper"  # created
    rc = main(["predict", "--model", str(model), "--image", str(folder / "*.tif"),
               "--out", str(out), "--instances", "--probabilities", str(tmp_path / "probs")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "a.tif: 48x64, " in err and "b.tif: 64x40, " in err and "c.tif: 2x32x32, " in err
    assert "3 predicted, 0 skipped, 0 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "b_labels.tif",
                                                     "c_labels.tif"]
    for name in "abc":
        single = _single(model, folder / f"{name}.tif", tmp_path / "one.tif", "--instances",
                         "--probabilities", str(tmp_path / "one_p.tif"))
        np.testing.assert_array_equal(tifffile.imread(out / f"{name}_labels.tif"), single)
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "probs" / f"{name}_probabilities.tif"),
            tifffile.imread(tmp_path / "one_p.tif"))
    # the objects counted in the summary are those written
    line = next(x for x in err.splitlines() if x.startswith("c.tif:"))
    labels = tifffile.imread(out / "c_labels.tif")
    assert f", {np.unique(labels[labels > 0]).size} objects," in line


def test_a_folder_resumes_and_redoes_what_changed(model, folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", "--model", str(model), "--image", str(folder), "--out", str(out)]
    assert main(args) == 0
    assert "foreground" in capsys.readouterr().err
    first = {p.name: os.stat(p).st_mtime_ns for p in out.iterdir()}
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("skipped, its outputs are up to date") == 3
    assert "0 predicted, 3 skipped" in err
    assert {p.name: os.stat(p).st_mtime_ns for p in out.iterdir()} == first
    # an image changed after its labels: only it is predicted again
    later = first["b_labels.tif"] + 10**9
    os.utime(folder / "b.tif", ns=(later, later))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 predicted, 2 skipped" in err and "b.tif: 64x40" in err
    assert os.stat(out / "b_labels.tif").st_mtime_ns > first["b_labels.tif"]
    # a newer model: everything again; --redo too
    newest = max(os.stat(p).st_mtime_ns for p in out.iterdir()) + 10**9
    os.utime(model, ns=(newest, newest))
    assert main(args) == 0
    assert "3 predicted, 0 skipped" in capsys.readouterr().err
    assert main([*args, "--redo"]) == 0
    assert "3 predicted, 0 skipped" in capsys.readouterr().err


def test_a_bad_file_is_reported_and_the_others_are_predicted(model, folder, tmp_path, capsys):
    (folder / "broken.tif").write_bytes(b"II*\x00 not really a TIFF" * 4)
    tifffile.imwrite(folder / "rgb.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(model), "--image", str(folder / "*.tif"),
               "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.splitlines()
    assert any(x.startswith("broken.tif: error: broken.tif ") for x in err)
    assert any(x.startswith("rgb.tif: error:") and "--channel" in x for x in err)
    assert "3 predicted, 0 skipped, 2 failed" in err[-1]
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "b_labels.tif",
                                                     "c_labels.tif"]
    # the next run predicts only the files that failed (and fails on them again)
    assert main(["predict", "--model", str(model), "--image", str(folder / "*.tif"),
                 "--out", str(out)]) == 2
    assert "0 predicted, 3 skipped, 2 failed" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["out_is_file", "out_is_tiff_name", "out_among_images",
                                  "no_match", "empty_folder", "same_names"])
def test_folders_refuse_what_would_lose_data(model, folder, tmp_path, capsys, case):
    image, out = str(folder / "*.tif"), tmp_path / "out"
    expected = {"out_is_file": "is a file", "out_is_tiff_name": "looks like a TIFF file",
                "out_among_images": "would replace it", "no_match": "matches no file",
                "empty_folder": "holds no TIFF file", "same_names": "different names"}[case]
    if case == "out_is_file":
        out.write_bytes(b"x")
    elif case == "out_is_tiff_name":
        out = tmp_path / "labels.tif"
    elif case == "out_among_images":
        out = folder
        tifffile.imwrite(folder / "a_labels.tif", np.ones((8, 8), np.uint8))
    elif case == "no_match":
        image = str(tmp_path / "nothing*.tif")
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        image = str(tmp_path / "empty")
    else:  # a.tif and a.tiff would both write a_labels.tif
        tifffile.imwrite(folder / "a.tiff", np.ones((8, 8), np.uint8))
        image = str(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rc = main(["predict", "--model", str(model), "--image", image, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("napari-unet: error: ") and err.count("\n") == 1
    assert expected in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "labels.tif").exists()


def test_several_files_as_a_shell_expands_a_pattern(model, folder, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["predict", "--model", str(model), "--image", str(folder / "c.tif"),
               str(folder / "a.tif"), str(folder / "missing.tif"), str(folder / "a.tif"),
               "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.splitlines()
    assert [x.split(":")[0] for x in err[:3]] == ["c.tif", "a.tif", "missing.tif"]
    assert "does not exist" in err[2]
    assert "2 predicted, 0 skipped, 1 failed" in err[3] and len(err) == 4
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "c_labels.tif"]
    np.testing.assert_array_equal(tifffile.imread(out / "a_labels.tif"),
                                  _single(model, folder / "a.tif", tmp_path / "one.tif"))


def test_a_stopped_run_keeps_what_it_wrote_and_the_next_one_goes_on(model, folder, tmp_path,
                                                                     capsys, monkeypatch):
    import signal

    from napari_unet.cli import Interrupted
    from napari_unet.cli import predict as cli

    read = cli._Reader.__call__

    def sigterm_at_b(self, path):  # SIGTERM arrives while b.tif is read
        if path.name == "b.tif":
            raise Interrupted(signal.SIGTERM)
        return read(self, path)

    out = tmp_path / "out"
    args = ["predict", "--model", str(model), "--image", str(folder), "--out", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(cli._Reader, "__call__", sigterm_at_b)
        assert main(args) == 143
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after 1 of 3 files; their outputs are kept" in err
    assert [p.name for p in out.iterdir()] == ["a_labels.tif"]  # no temporary file left
    assert main(args) == 0
    assert "2 predicted, 1 skipped, 0 failed" in capsys.readouterr().err


def test_each_file_line_says_when_its_image_was_predicted_resized(tmp_path, capsys):
    """Of two files, the one whose objects look four times larger across than the
    model's is predicted shrunk, and its line says so; the other's does not."""
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from tests.core.test_scale import discs

    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    tifffile.imwrite(images / "large.tif", (discs(16, shape=(160, 160)) * 1000 + 500
                                            ).astype(np.uint16))
    tifffile.imwrite(images / "small.tif", (discs(4, shape=(160, 160)) * 1000 + 500
                                            ).astype(np.uint16))
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    bundle.object_size = 10.0
    bundle.save(tmp_path / "m.pt")
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--image", str(images),
                 "--out", str(out)]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().err.splitlines()
             if line.endswith(" s")}
    assert "of its size" in lines["large.tif"] and "of its size" not in lines["small.tif"]
    for name in ("large", "small"):
        assert tifffile.imread(out / f"{name}_labels.tif").shape == (160, 160)
