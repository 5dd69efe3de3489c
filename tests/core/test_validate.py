import pickle

import pytest
import torch
from safetensors.torch import save_file

from headsplat.core.errors import ArgumentError, HeadsplatError, InputError, ShapeError
from headsplat.core.validate import (
    check_choice,
    check_shape,
    read_safetensors,
    read_safetensors_with_metadata,
    resolve_user_file,
)

ENV = "HEADSPLAT_TEST_THING"


def test_check_shape_accepts_matching_and_batched_shapes():
    check_shape("x", torch.zeros(4, 3), (4, 3))
    check_shape("x", torch.zeros(4, 3), (None, 3))
    check_shape("x", torch.zeros(2, 5, 4, 3), ("...", "N", 3))
    check_shape("x", torch.zeros(3), ("...", 3))


@pytest.mark.parametrize("shape, expected, message", [
    ((4, 2), (4, 3), r"x: expected shape \(4, 3\), got \(4, 2\)"),
    ((2, 4, 3), (4, 3), r"x: expected shape \(4, 3\), got \(2, 4, 3\)"),
    ((3,), ("...", "N", 3), r"x: expected shape \(\.\.\., N, 3\), got \(3,\)"),
])
def test_check_shape_states_expected_and_actual(shape, expected, message):
    with pytest.raises(ShapeError, match=message):
        check_shape("x", torch.zeros(shape), expected)


def test_check_choice_returns_the_value_or_names_the_parameter_and_the_choices():
    assert check_choice("preset", "fast", ("fast", "quality")) == "fast"
    with pytest.raises(ArgumentError) as info:
        check_choice("preset", "x", ("fast", "quality"))
    assert str(info.value) == "preset: unknown value 'x'; choose fast or quality"
    assert info.value.param == "preset" and info.value.message == "unknown value 'x'; choose fast or quality"
    with pytest.raises(ArgumentError, match="^rig: unknown value 'z'; choose open$"):
        check_choice("rig", "z", ("open",))
    with pytest.raises(ArgumentError, match="^n: unknown value 4; choose 1, 2 or 3$"):
        check_choice("n", 4, (1, 2, 3))


def test_argument_error_is_a_user_error_a_value_error_and_pickles():
    e = ArgumentError("max_frames", "expected >= 1, got 0")
    assert isinstance(e, HeadsplatError) and isinstance(e, ValueError)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is ArgumentError and back.param == "max_frames" and str(back) == str(e)
    assert "\n" not in str(e)


@pytest.fixture
def no_settings(tmp_path, monkeypatch):
    """No environment variable, and a settings folder of its own (no settings file yet)."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    return tmp_path / "cfg" / "headsplat" / "config.json"


def _resolve(path, kind="file"):
    return resolve_user_file(path, ENV, "thing", "test thing", "--thing FILE", kind=kind, see="README: things")


def test_resolve_user_file_from_the_flag(no_settings, tmp_path):
    f = tmp_path / "given.bin"
    f.write_bytes(b"x")
    assert _resolve(f) == f
    assert _resolve(str(f)) == f


def test_resolve_user_file_from_the_environment_before_the_settings_file(no_settings, tmp_path, monkeypatch):
    env_file, cfg_file = tmp_path / "env.bin", tmp_path / "cfg.bin"
    env_file.write_bytes(b"x")
    cfg_file.write_bytes(b"x")
    no_settings.parent.mkdir(parents=True)
    no_settings.write_text(f'{{"thing": "{cfg_file}"}}')
    assert _resolve(None) == cfg_file
    monkeypatch.setenv(ENV, str(env_file))
    assert _resolve(None) == env_file
    assert _resolve("") == env_file  # an empty flag looks further


def test_resolve_user_file_none_set_says_how_to_set_each(no_settings):
    with pytest.raises(InputError) as info:
        _resolve(None)
    assert str(info.value) == (f'no test thing given: pass --thing FILE, set {ENV}, or put {{"thing": '
                               f'"/path/to/file"}} in {no_settings} (see README: things)')


def test_resolve_user_file_refuses_what_is_missing_or_of_the_wrong_kind(no_settings, tmp_path):
    with pytest.raises(InputError, match="^.*none.bin: test thing file not found$"):
        _resolve(tmp_path / "none.bin")
    with pytest.raises(InputError, match="test thing file not found"):
        _resolve(tmp_path)  # a folder where a file is wanted
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(InputError, match="f.bin: test thing folder not found"):
        _resolve(tmp_path / "f.bin", kind="folder")
    assert _resolve(tmp_path, kind="folder") == tmp_path
    assert _resolve(tmp_path, kind="file_or_folder") == tmp_path
    assert _resolve(tmp_path / "f.bin", kind="file_or_folder") == tmp_path / "f.bin"
    with pytest.raises(InputError, match="none: test thing file or folder not found"):
        _resolve(tmp_path / "none", kind="file_or_folder")
    assert _resolve(tmp_path / "none", kind=None) == tmp_path / "none"  # left to the reader


def test_resolve_user_file_reports_a_corrupt_settings_file(no_settings):
    no_settings.parent.mkdir(parents=True)
    no_settings.write_text("{not json")
    with pytest.raises(InputError, match="config.json: not a valid headsplat config file"):
        _resolve(None)


def test_resolve_user_file_shows_a_folder_example_for_folders(no_settings):
    with pytest.raises(InputError, match='"thing": "/path/to/folder"'):
        _resolve(None, kind="folder")


def test_read_safetensors_good_file(tmp_path):
    t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    save_file(t, str(tmp_path / "g.safetensors"), metadata={"note": "hi"})
    back = read_safetensors(tmp_path / "g.safetensors")
    assert set(back) == {"a", "b"} and torch.equal(back["a"], t["a"]) and back["b"].dtype == torch.int64
    tensors, meta = read_safetensors_with_metadata(str(tmp_path / "g.safetensors"))
    assert meta == {"note": "hi"} and torch.equal(tensors["b"], t["b"])
    save_file(t, str(tmp_path / "plain.safetensors"))
    assert read_safetensors_with_metadata(tmp_path / "plain.safetensors")[1] == {}


def test_read_safetensors_corrupt_and_missing_files_are_one_line_input_errors(tmp_path):
    save_file({"a": torch.zeros(8)}, str(tmp_path / "g.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "g.safetensors").read_bytes()[:-8])
    (tmp_path / "junk.safetensors").write_bytes(b"definitely not safetensors")
    for name in ("cut.safetensors", "junk.safetensors", "missing.safetensors"):
        with pytest.raises(InputError, match=f"{name}: not a readable safetensors file \\(.+\\)$") as info:
            read_safetensors(tmp_path / name)
        assert "\n" not in str(info.value)
