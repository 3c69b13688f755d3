"""Untrusted inputs read within bounds: YAML, zip members, files that are not regular files,
and the bioimage.io packages made of them (the probe cases of issue 17 and their classes)."""

import io
import os
import pickle
import stat
import time
import zipfile

import pytest
import torch

yaml = pytest.importorskip("yaml")

from napari_unet.engine.errors import ModelFileError  # noqa: E402
from napari_unet.storage.bioimageio import export_model, import_model  # noqa: E402
from napari_unet.storage.loading import load_model  # noqa: E402
from napari_unet.storage.untrusted import (  # noqa: E402
    MAX_YAML_NODES,
    load_yaml,
    read_member,
    read_regular_file,
)

LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True)
)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    assert "Traceback" not in message and "file an issue" not in message
    return message


@pytest.fixture(scope="module")
def package(trained, tmp_path_factory):
    return export_model(trained, tmp_path_factory.mktemp("zoo") / "model.zip")


def rewritten(package, target, rdf=None, replace=None, add=None):
    """A copy of ``package`` with its rdf changed by ``rdf(dict)`` (or given as text), members
    replaced by ``replace`` {name: bytes} and extra ZipInfo members ``add``."""
    replace = dict(replace or {})
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == "rdf.yaml" and rdf is not None:
                if callable(rdf):
                    description = yaml.safe_load(data)
                    rdf(description)
                    data = yaml.safe_dump(description).encode()
                else:
                    data = rdf.encode()
            data = replace.pop(name, data)
            if data is not None:
                out.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in replace.items():
            out.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        for info, data in add or []:
            out.writestr(info, data)
    return target


def refused(path, match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=match) as error:
        load_model(path)
    assert time.perf_counter() - start < 5
    return one_line(error)


def test_plain_yaml_is_read_and_aliases_that_expand_are_refused():
    assert load_yaml(b"a: [1, 2.5, x, null, true]\nb: {<<: {c: 1}}\n", "d") == {
        "a": [1, 2.5, "x", None, True],
        "b": {"c": 1},
    }
    assert load_yaml(b"when: 2024-01-01\nat: 2001-12-14 21:59:43\n", "d") == {
        "when": "2024-01-01",
        "at": "2001-12-14 21:59:43",
    }
    with pytest.raises(ModelFileError, match=f"more than {MAX_YAML_NODES} values") as error:
        load_yaml(LAUGHS.encode(), "the description")
    one_line(error)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: !!binary aGVsbG8=", "tagged !!binary"),
        ("a: !!set {x, y}", "tagged !!set"),
        ("a: !!omap [x: 1]", "tagged !!omap"),
        ("a: !!python/object/apply:os.system ['true']", "tagged !!python/object/apply"),
        ("a: !custom 1", "tagged !custom"),
        ("1: a", "keys are not all texts"),
        ("a: " + "9" * 5000, "number too long"),
        ("a: 1\n---\nb: 2", "not valid YAML"),
        ("[" * 20000 + "]" * 20000, "not valid YAML|nested too deeply"),
    ],
)
def test_yaml_that_is_not_plain_is_refused_in_one_line(text, match):
    with pytest.raises(ModelFileError, match=match) as error:
        load_yaml(text.encode(), "the description")
    one_line(error)


def test_only_regular_files_within_the_limit_are_read(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"12345")
    assert read_regular_file(small, 5, "the file") == b"12345"
    with pytest.raises(ModelFileError, match="more than the 4 bytes") as error:
        read_regular_file(small, 4, "the file")
    one_line(error)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    zero = tmp_path / "zero"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero, tmp_path):
        with pytest.raises(ModelFileError, match="not a regular file"):
            read_regular_file(path, 2**20, "the file")


def test_zip_members_are_read_within_their_limit_whatever_they_claim(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big", b"\0" * 2**20)
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("folder/", b"")
    with zipfile.ZipFile(path) as archive:
        assert len(read_member(archive, "big", 2**20, "it")) == 2**20
        with pytest.raises(ModelFileError, match="inflates to 1.0 MiB"):
            read_member(archive, "big", 1000, "it")
        archive.getinfo("big").file_size = 10  # a header that lies: read no further
        with pytest.raises((ModelFileError, zipfile.BadZipFile)):
            read_member(archive, "big", 1000, "it")
        for name in ("link", "folder/"):
            with pytest.raises(ModelFileError, match="not a plain file"):
                read_member(archive, name, 1000, "it")
        with pytest.raises(ModelFileError, match="has no missing"):
            read_member(archive, "missing", 1000, "it")


def test_a_package_with_expanding_yaml_aliases_is_refused_at_once(package, tmp_path):
    with zipfile.ZipFile(package) as archive:
        rdf = archive.read("rdf.yaml").decode()
    bomb = rewritten(package, tmp_path / "laughs.zip", rdf=rdf + LAUGHS)
    refused(bomb, "more than 200000 values \\(nested YAML aliases\\?\\)")


def test_zip_bombs_in_a_package_are_refused_before_they_inflate(package, tmp_path):
    rdf_bomb = rewritten(package, tmp_path / "r.zip", replace={"rdf.yaml": b"#" * (5 * 2**20)})
    refused(rdf_bomb, "rdf.yaml \\(rdf.yaml\\) inflates to 5.0 MiB")
    weights_bomb = rewritten(package, tmp_path / "w.zip", replace={"weights.pt": b"\0" * 2**23})
    refused(weights_bomb, "the weights \\(weights.pt\\) inflates to 8.0 MiB")


def test_an_unpacked_package_reads_only_regular_files(package, tmp_path):
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    assert load_model(folder / "rdf.yaml").class_names == import_model(package).class_names
    weights = folder / "weights.pt"
    weights.unlink()
    os.mkfifo(weights)
    refused(folder / "rdf.yaml", "the weights \\(weights.pt\\) is not a regular file")
    weights.unlink()
    weights.symlink_to("/dev/zero")
    refused(folder / "rdf.yaml", "not a regular file")


@pytest.mark.parametrize(
    "value",
    ["!!binary aGVsbG8=", "!!set {a, b}", "2001-12-14 21:59:43.10 -5", "2024-01-01"],
)
def test_yaml_only_types_in_the_config_are_read_as_text_or_refused(package, tmp_path, value):
    with zipfile.ZipFile(package) as archive:
        rdf = archive.read("rdf.yaml").decode()
    marker = "napari_unet:\n"
    assert marker in rdf
    odd = rdf.replace(marker, f"napari_unet:\n    napari_unet_version: {value}\n", 1)
    path = rewritten(package, tmp_path / "odd.zip", rdf=odd)
    try:
        model = load_model(path)
    except ModelFileError as error:
        assert "\n" not in str(error) and "tagged !!" in str(error)
    else:
        assert model.class_names == import_model(package).class_names


class Runs:
    def __reduce__(self):
        return (os.system, ("touch ran",))


def odd_state(package, kind: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        state = torch.load(io.BytesIO(archive.read("weights.pt")), weights_only=True)
    key = next(iter(state))
    if kind == "sparse":
        state[key] = state[key].to_sparse()
    else:  # a view claiming 10^12 values of one stored number
        state[key] = torch.zeros(1).expand(10**6, 10**6)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["garbage", "pickle", "sparse", "expanded", "list"])
def test_weights_that_are_not_a_plain_state_dict_are_refused_in_one_line(
    package, tmp_path, monkeypatch, kind
):
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save([torch.zeros(2)], buffer)
    weights = {
        "garbage": b"\x80\x04garbage" * 100,
        "pickle": pickle.dumps(Runs()),
        "sparse": odd_state(package, "sparse"),
        "expanded": odd_state(package, "expanded"),
        "list": buffer.getvalue(),
    }[kind]
    path = rewritten(package, tmp_path / "w.zip", replace={"weights.pt": weights})
    refused(path, "holds weights that are not a (plain )?PyTorch state dict")
    assert not (tmp_path / "ran").exists()


def test_a_weights_member_that_is_a_symlink_is_refused(package, tmp_path):
    link = zipfile.ZipInfo("weights.pt")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = rewritten(package, tmp_path / "l.zip", replace={"weights.pt": None}, add=[(link, "x")])
    refused(path, "weights.pt in the package is not a plain file")


def test_a_huge_class_name_is_refused_in_one_line(package, tmp_path):
    def huge(rdf):
        rdf["config"]["napari_unet"]["class_names"][1] = "n" * 10**7

    path = rewritten(package, tmp_path / "huge.zip", rdf=huge)
    refused(path, "rdf.yaml \\(rdf.yaml\\) inflates to|class name")
    short = "n" * 2**20
    path = rewritten(
        package,
        tmp_path / "long.zip",
        rdf=lambda r: r["config"]["napari_unet"]["class_names"].__setitem__(1, short),
    )
    refused(path, "must be 1 to 60 printable characters")


def test_a_model_file_header_nested_too_deeply_is_refused_in_one_line(tmp_path):
    header = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    refused(path, "not a napari-unet-loop model")
    config = b'{"__metadata__": {"napari-unet": "' + b"[" * 100_000 + b'"}}'
    path.write_bytes(len(config).to_bytes(8, "little") + config)
    refused(path, "damaged model config")
