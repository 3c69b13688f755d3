"""bioimage.io packages: exported, validated by bioimageio.spec and run by bioimageio.core,
imported."""

import dataclasses
import io
import zipfile

import numpy as np
import pytest
import torch

yaml = pytest.importorskip("yaml")

from napari_unet.engine.errors import ModelFileError, UNetError
from napari_unet.engine.images import Normalization
from napari_unet.engine.predict import predict
from napari_unet.storage.bioimageio import export_model, import_model
from napari_unet.storage.loading import load_model

yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def package(trained, image, tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "nuclei.zip"
    return export_model(trained, path, test_image=image[100:164, 200:264], authors=["A. Tester"])


def test_package_holds_the_model_and_its_test_data(package, trained):
    with zipfile.ZipFile(package) as zip_file:
        names = set(zip_file.namelist())
        rdf = yaml.safe_load(zip_file.read("rdf.yaml"))
    assert {"rdf.yaml", "weights.pt", "unet.py", "test_input.npy", "test_output.npy"} <= names
    assert {"cover.png", "README.md"} <= names
    assert rdf["config"]["napari_unet"]["class_names"] == trained.class_names
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "class_2"]
    assert rdf["inputs"][0]["preprocessing"][1]["id"] == "scale_range"
    assert rdf["authors"] == [{"name": "A. Tester"}]


def test_package_is_valid_for_bioimageio_spec(package):
    spec = pytest.importorskip("bioimageio.spec")
    description = spec.load_description(package, perform_io_checks=True)
    assert description.validation_summary.status in ("valid-format", "passed"), (
        description.validation_summary.format()
    )


def test_odd_class_names_make_a_valid_name_and_odd_names_are_refused(trained, tmp_path):
    names = ["background", "nucleus/cell, round (Kern–groß)"]
    odd = dataclasses.replace(trained, class_names=names)
    path = export_model(odd, tmp_path / "odd.zip", authors=["A. Tester"])
    with zipfile.ZipFile(path) as package:
        rdf = yaml.safe_load(package.read("rdf.yaml"))
    assert rdf["name"] == "napari-unet-loop nucleus cell round (Kern gro )"
    spec = pytest.importorskip("bioimageio.spec")
    description = spec.load_description(path, perform_io_checks=True)
    assert description.validation_summary.status in ("valid-format", "passed"), (
        description.validation_summary.format()
    )
    for bad in ("nuclei/cells", "x" * 129, " ", ""):
        with pytest.raises(UNetError, match="bioimage.io model name"):
            export_model(trained, tmp_path / "bad.zip", name=bad)
    assert not (tmp_path / "bad.zip").exists()


def test_a_licence_bioimage_io_would_refuse_is_an_error_with_the_id_meant(trained, tmp_path):
    path = export_model(trained, tmp_path / "mit.zip", authors=["A. Tester"], license="MIT")
    with zipfile.ZipFile(path) as package:
        assert yaml.safe_load(package.read("rdf.yaml"))["license"] == "MIT"
    for bad, hint in (("mit", "did you mean MIT?"), ("Apache 2.0", "Apache-2.0"), ("", "spdx")):
        with pytest.raises(UNetError, match=f"not an SPDX licence id.*{hint}"):
            export_model(trained, tmp_path / "bad.zip", license=bad)
    assert not (tmp_path / "bad.zip").exists()


def test_bioimageio_core_reproduces_the_test_output(package):
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(package)
    assert summary.status == "passed", summary.format()


def test_imported_model_predicts_the_packaged_test_output(package, trained):
    with zipfile.ZipFile(package) as zip_file:
        test_input = np.load(zip_file.open("test_input.npy"))
        expected = np.load(zip_file.open("test_output.npy"))
    imported = import_model(package)
    assert imported.class_names == trained.class_names
    result = predict(imported, test_input[0, 0], probabilities=True)
    # predict() may run in bf16 (CPUs with AVX512-BF16, GPUs); the package holds float32
    np.testing.assert_allclose(result.probabilities, expected[0], atol=0.02)
    agree = (result.probabilities.argmax(0) == expected[0].argmax(0)).mean()
    assert agree > 0.98


def test_fixed_normalisation_exports_as_a_linear_scale(trained, tmp_path):
    fixed = import_model(export_model(trained, tmp_path / "a.zip"))
    fixed.normalization = Normalization(mode="fixed", low=[10.0], high=[200.0])
    path = export_model(fixed, tmp_path / "fixed.zip")
    with zipfile.ZipFile(path) as zip_file:
        step = yaml.safe_load(zip_file.read("rdf.yaml"))["inputs"][0]["preprocessing"][1]
    assert step["id"] == "scale_linear"
    assert step["kwargs"]["gain"] == pytest.approx([1 / 190])
    assert import_model(path).normalization.low == [10.0]


def test_export_never_replaces_a_file(trained, tmp_path):
    target = tmp_path / "mine.zip"
    target.write_bytes(b"a colleague's package")
    with pytest.raises(UNetError, match="exists"):
        export_model(trained, target)
    assert target.read_bytes() == b"a colleague's package"
    with pytest.raises(UNetError, match=".zip"):
        export_model(trained, tmp_path / "model.safetensors")


def test_foreign_or_damaged_packages_are_refused(tmp_path, package):
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(foreign, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "rdf.yaml":
                rdf = yaml.safe_load(data)
                del rdf["config"]["napari_unet"]
                data = yaml.safe_dump(rdf).encode()
            target.writestr(name, data)
    with pytest.raises(UNetError, match="not exported by napari-unet-loop"):
        import_model(foreign)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not really")
    with pytest.raises(UNetError, match="not a readable"):
        import_model(broken)


def test_weights_that_share_memory_load_as_tensors_of_their_own(tmp_path, package):
    shared = tmp_path / "shared.zip"
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(shared, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "weights.pt":
                state = torch.load(io.BytesIO(data), weights_only=True)
                state["inc.1.running_var"] = state["inc.1.weight"]  # one tensor, two names
                torch.save(state, buffer := io.BytesIO())
                data = buffer.getvalue()
            target.writestr(name, data)
    model = import_model(shared)
    weights = model.net.state_dict()
    assert torch.equal(weights["inc.1.running_var"], weights["inc.1.weight"])


def test_packages_load_as_models_under_any_name_and_model_files_are_not_packages(
    package, trained, tmp_path
):
    from napari_unet.storage.loading import load_model
    from napari_unet.storage.model_files import save_model

    renamed = tmp_path / "nuclei-package"
    renamed.write_bytes(package.read_bytes())
    assert load_model(renamed).class_names == trained.class_names
    for name in ("model.zip", "rdf.yaml"):
        with pytest.raises(UNetError, match="would be read back as a bioimage.io package"):
            save_model(trained, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuclei-package"]


def test_export_replaces_only_packages_and_never_its_own_model(package, trained, tmp_path):
    data = tmp_path / "data.zip"
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("raw/a.txt", "precious")
    with pytest.raises(UNetError, match="is not a bioimage.io model package; not overwriting"):
        export_model(trained, data, overwrite=True)
    assert zipfile.ZipFile(data).read("raw/a.txt") == b"precious"
    own = tmp_path / "own.zip"
    own.write_bytes(package.read_bytes())
    with pytest.raises(UNetError, match="is the model of this run"):
        export_model(trained, own, overwrite=True, inputs={own: "the model"})
    assert own.read_bytes() == package.read_bytes()
    assert export_model(trained, own, overwrite=True) == own


def test_a_broken_rdf_yaml_is_reported_in_one_line(tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n: : : [\n")
    with pytest.raises(UNetError, match=r"^the package's rdf.yaml is not valid YAML \(line 2\)$"):
        import_model(broken)


def test_a_test_image_of_complex_or_text_values_is_refused(trained, tmp_path):
    for image in (np.ones((64, 64), np.complex64), np.full((64, 64), "a")):
        with pytest.raises(UNetError, match="must hold real numbers"):
            export_model(trained, tmp_path / "t.zip", test_image=image)
    assert not list(tmp_path.iterdir())


def test_an_encrypted_package_is_refused_in_one_line(tmp_path):
    import zipfile

    pytest.importorskip("yaml")
    path = tmp_path / "encrypted.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    data = bytearray(path.read_bytes())
    for header, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.find(header) + flags] |= 1  # the "encrypted" bit
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable bioimage.io package"):
        load_model(path)
