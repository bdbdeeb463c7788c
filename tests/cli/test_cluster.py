"""``predict --workers N`` and ``--scheduler``: the same outputs as one process."""

import numpy as np
import tifffile

from napari_unet.cli import main


def _outputs(out):
    return {p.name: tifffile.imread(p) for p in sorted(out.iterdir())}


def test_two_worker_processes_write_what_one_process_writes(model, folder, tmp_path, capsys):
    (folder / "broken.tif").write_bytes(b"not a TIFF at all")
    base = ["predict", "--model", str(model), "--image", str(folder / "*.tif"), "--instances"]
    assert main(["-q", *base, "--out", str(tmp_path / "one")]) == 2
    capsys.readouterr()
    rc = main([*base, "--out", str(tmp_path / "two"), "--probabilities",
               str(tmp_path / "two"), "--workers", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert any(x.startswith("broken.tif: error: broken.tif ") for x in err.splitlines())
    assert "3 predicted, 0 skipped, 1 failed" in err
    # one line per file and the counts, nothing from the cluster's machinery
    lines = err.splitlines()
    assert len(lines) == 5 and sorted(x.split(":")[0] for x in lines[:4]) == [
        "a.tif", "b.tif", "broken.tif", "c.tif"]
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert sorted(two) == sorted([*one, "a_probabilities.tif", "b_probabilities.tif",
                                  "c_probabilities.tif"])
    for name, labels in one.items():
        assert labels.dtype == two[name].dtype
        np.testing.assert_array_equal(two[name], labels)
    assert two["c_probabilities.tif"].shape == (2, 3, 32, 32)


def test_an_existing_scheduler_runs_the_files(model, folder, tmp_path, capsys):
    from distributed import LocalCluster

    assert main(["-q", "predict", "--model", str(model), "--image", str(folder), "--out",
                 str(tmp_path / "one")]) == 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        rc = main(["predict", "--model", str(model), "--image", str(folder), "--out",
                   str(tmp_path / "two"), "--scheduler", cluster.scheduler_address])
    assert rc == 0
    assert "3 predicted, 0 skipped, 0 failed" in capsys.readouterr().err
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert sorted(one) == sorted(two) == ["a_labels.tif", "b_labels.tif", "c_labels.tif"]
    for name in one:
        np.testing.assert_array_equal(two[name], one[name])


def test_a_scheduler_that_does_not_answer_one_image_is_one_line(model, folder, tmp_path,
                                                                capsys, monkeypatch):
    from napari_unet.core.predict import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    rc = main(["predict", "--model", str(model), "--image", str(folder / "a.tif"), "--out",
               str(tmp_path / "a.ome.zarr"), "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach the dask scheduler" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "m.pt"]


def test_a_scheduler_that_does_not_answer_is_one_line(model, folder, tmp_path, capsys,
                                                       monkeypatch):
    from napari_unet.core.predict import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    rc = main(["predict", "--model", str(model), "--image", str(folder), "--out",
               str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("napari-unet: error: cannot reach the dask scheduler at "
                          "tcp://127.0.0.1:1")
    assert list((tmp_path / "out").iterdir()) == []
