"""bioimage.io model packages: ``napari-unet export`` and ``predict --model X.zip``."""

import importlib.util
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from napari_unet.cli import main
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.normalise import Normalisation
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.share.package import load_package
from tests.conftest import blobs

bioimageio_core = pytest.importorskip("bioimageio.core")

TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny instance model trained for a few iterations, saved with percentiles other
    than the defaults and its logits scaled up tenfold (as confident as a well trained
    model, so that its probabilities follow a change of the input scaling), and its
    training image."""
    folder = tmp_path_factory.mktemp("export")
    image, labels = blobs(np.random.default_rng(3), shape=(3, 64, 96))
    ip, lp = folder / "img.tif", folder / "lab.tif"
    tifffile.imwrite(ip, image.astype(np.uint16))
    tifffile.imwrite(lp, labels)
    model = folder / "m.pt"
    assert main(["-q", "train", "--image", str(ip), "--labels", str(lp), "--labels-kind",
                 "instance", "--out", str(model), "--iterations", "6", "--seed", "2",
                 *TINY]) == 0
    bundle = load_bundle(model)
    bundle.normalisation = Normalisation(low=2.0, high=99.0)
    bundle.state_dict = {k: v * 10 if k.startswith("outc.") else v
                         for k, v in bundle.state_dict.items()}
    bundle.save(model)
    return model, ip


@pytest.fixture(scope="module")
def package(trained):
    model, ip = trained
    out = model.with_name("m.zip")
    assert main(["-q", "export", "--model", str(model), "--out", str(out),
                 "--test-image", str(ip), "--author", "Ada Lovelace", "--author",
                 "Alan Turing"]) == 0
    return out


def _reference(bundle, image2d):
    """The project's predictor on one slice: one tile, no overlap, float32 on the CPU, the
    slice at its own size (as bioimage.io's tools run a package)."""
    predictor = Predictor(bundle, device="cpu", tile_size=max(image2d.shape), overlap=0,
                          mixed_precision=False, rescale="off")
    return predictor.predict(image2d, probabilities=True).probabilities


def _weight_formats(package) -> list[str]:
    with zipfile.ZipFile(package) as zf:
        weights = yaml.safe_load(zf.read("rdf.yaml"))["weights"]
    return [fmt for fmt, entry in weights.items() if entry]


def test_package_passes_bioimageio_model_test(package):
    formats = _weight_formats(package)
    # ONNX weights come with the onnx package
    expected = {"pytorch_state_dict", "torchscript"} | (
        {"onnx"} if importlib.util.find_spec("onnx") else set())
    assert set(formats) == expected
    summary = bioimageio_core.test_model(package)
    text = summary.format()
    assert summary.status == "passed", text
    for fmt in formats:  # every weight format reproduced the test output
        assert f"Reproduce test outputs from test inputs ({fmt})" in text


def test_package_describes_the_model(package, trained):
    bundle = load_bundle(trained[0])
    with zipfile.ZipFile(package) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        names = set(zf.namelist())
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5")
    assert {"weights.pt", "weights_torchscript.pt", "test_input.npy", "test_output.npy",
            "sample_input.tif", "sample_output.tif"} <= names
    assert [a["name"] for a in rdf["authors"]] == ["Ada Lovelace", "Alan Turing"]
    raw = rdf["inputs"][0]
    assert [a["type"] for a in raw["axes"]] == ["batch", "channel", "space", "space"]
    assert raw["axes"][2]["size"] == {"min": 4, "step": 4}  # 2**depth
    step = next(s for s in raw["preprocessing"] if s["id"] == "scale_range")
    assert step["kwargs"]["min_percentile"] == 2.0 and step["kwargs"]["max_percentile"] == 99.0
    assert step["kwargs"]["axes"] == ["y", "x"]  # each slice on its own
    out = rdf["outputs"][0]
    assert "softmax" in [s["id"] for s in out["postprocessing"]]
    assert out["axes"][1]["channel_names"] == ["background", "nucleus", "boundary"]
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "UNet" and arch["import_from"] == "napari_unet.core.models.unet"
    assert arch["kwargs"] == bundle.config.to_dict()


def test_package_output_matches_the_project_predictor(package, trained):
    """bioimage.io's own prediction of the package, on its test tensor and on a new
    image of another size, is within 1e-4 of napari-unet's predictor."""
    bundle = load_bundle(trained[0])
    with zipfile.ZipFile(package) as zf, zf.open("test_input.npy") as fh:
        test_input = np.load(fh)
    fresh = blobs(np.random.default_rng(9), shape=(1, 48, 80))[0][0] * 3 + 7
    descr = bioimageio_core.load_model_description(package)
    for weights in _weight_formats(package):
        pipeline = bioimageio_core.create_prediction_pipeline(descr, weight_format=weights,
                                                              devices=["cpu"])
        for image in (test_input[0, 0], fresh.astype(np.float32)):
            sample = bioimageio_core.predict(model=pipeline, inputs={"raw": image[None, None]})
            got = np.asarray(sample.members["probabilities"].data)[0]
            want = _reference(bundle, image)
            assert got.shape == want.shape == (3, *image.shape)
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_predict_with_the_package_gives_the_labels_of_the_model_file(package, trained, tmp_path):
    model, ip = trained
    a, b = tmp_path / "from_pt.tif", tmp_path / "from_zip.tif"
    pa, pb = tmp_path / "prob_pt.tif", tmp_path / "prob_zip.tif"
    for source, out, prob in ((model, a, pa), (package, b, pb)):
        assert main(["-q", "predict", "--model", str(source), "--image", str(ip),
                     "--out", str(out), "--probabilities", str(prob)]) == 0
    labels, probs = tifffile.imread(a), tifffile.imread(pa)
    assert labels.shape == (3, 64, 96) and probs.shape == (3, 3, 64, 96)
    assert probs[:, 2].max() - probs[:, 2].min() > 0.01  # the image shows through
    np.testing.assert_array_equal(tifffile.imread(b), labels)
    np.testing.assert_array_equal(tifffile.imread(pb), probs)
    bundle, back = load_bundle(model), load_package(package)
    assert back.config == bundle.config and back.label_kind == "instance"
    assert back.class_names == bundle.class_names
    assert back.normalisation == bundle.normalisation
    assert bundle.object_size is not None and back.object_size == bundle.object_size
    assert all(np.array_equal(back.state_dict[k], v) for k, v in bundle.state_dict.items())


def test_export_refuses_what_it_cannot_write(trained, package, tmp_path, capsys):
    model, ip = trained
    cases = [
        (["--out", str(tmp_path / "m.pt")], "must end in .zip"),
        (["--out", str(model)], "replace an input"),
        (["--out", str(package)], "give --overwrite"),
        (["--out", str(tmp_path / "x.zip"), "--name", "ab"], "name"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["export", "--model", str(model), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.zip").exists()
    assert load_bundle(model).iterations == 6  # the input is untouched


def test_predict_refuses_zip_files_it_cannot_run(package, trained, tmp_path, capsys):
    _, ip = trained
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("notes.txt", "not a model")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(foreign, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "rdf.yaml":
                data = data.replace(b"napari_unet.core.models.unet", b"somewhere.else")
            dst.writestr(item, data)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "weights.pt":  # an object the safe loader must refuse
                data = pickle.dumps(Path("/an/object/that/is/not/a/tensor"))
            dst.writestr(item, data)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(package.read_bytes()[:2000])
    for source, message in ((other, "not a bioimage.io model package"),
                            (foreign, "not exported by napari-unet"),
                            (evil, "nothing in it was run"),
                            (broken, "not a bioimage.io model package")):
        out = tmp_path / "labels.tif"
        capsys.readouterr()
        assert main(["predict", "--model", str(source), "--image", str(ip),
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()


def _rewrite(package, target, rdf_edit=None, member_edit=None):
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "rdf.yaml" and rdf_edit is not None:
                rdf = yaml.safe_load(data)
                rdf_edit(rdf)
                data = yaml.safe_dump(rdf).encode()
            elif member_edit is not None:
                data = member_edit(item.filename, data)
            dst.writestr(item, data)


def test_damaged_packages_are_refused_with_a_sentence(package, tmp_path):
    """Corrupted bytes and edited descriptions never escape as anything but a
    ModelFileError (one sentence for the user)."""
    from napari_unet.core.errors import ModelFileError

    def drop(*keys):
        def edit(rdf):
            node = rdf
            for key in keys[:-1]:
                node = node[key]
            del node[keys[-1]]
        return edit

    def put(value, *keys):
        def edit(rdf):
            node = rdf
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = value
        return edit

    def percentile(value):
        def edit(rdf):
            for step in rdf["inputs"][0]["preprocessing"]:
                if step["id"] == "scale_range":
                    step["kwargs"]["max_percentile"] = value
        return edit

    arch = ("weights", "pytorch_state_dict", "architecture")
    edits = [drop("weights"), drop("inputs"), put([], "inputs"), put("x", "inputs"),
             put({"depth": 40}, *arch, "kwargs"), put({"base_channels": 8}, *arch, "kwargs"),
             put("nowhere.pt", "weights", "pytorch_state_dict", "source"),
             put(None, "config"), put([], "weights", "pytorch_state_dict"),
             percentile(150.0), percentile("high"), put("dataset", "type")]
    cases = [lambda t, e=e: _rewrite(package, t, rdf_edit=e) for e in edits]
    cases.append(lambda t: _rewrite(package, t, member_edit=lambda n, d: d[: len(d) // 2]
                                    if n == "weights.pt" else d))
    cases.append(lambda t: _rewrite(package, t, member_edit=lambda n, d: b"\xff\xfe" + d
                                    if n == "weights.pt" else d))
    raw = package.read_bytes()

    def flip(target, pos, value):
        data = bytearray(raw)
        data[pos] = value
        target.write_bytes(bytes(data))

    rng = np.random.default_rng(0)
    for pos, value in zip(rng.integers(len(raw), size=20), rng.integers(256, size=20)):
        cases.append(lambda t, p=int(pos), v=int(value): flip(t, p, v))
    refused = 0
    for i, make in enumerate(cases):
        target = tmp_path / f"case{i}.zip"
        make(target)
        try:
            load_package(target)
        except ModelFileError as exc:
            refused += 1
            assert "\n" not in str(exc) and len(str(exc)) < 400
    assert refused >= len(edits) + 2  # every edit and damaged weights are refused
