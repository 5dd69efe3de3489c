import json

import pytest

from headsplat.core.errors import InputError, OutputError
from headsplat.core.fileio import (
    atomic_dir,
    atomic_path,
    check_format,
    check_input_file,
    check_writable,
    read_format_json,
)


class Boom(RuntimeError):
    pass


def test_atomic_path_writes_on_success_and_keeps_the_suffix(tmp_path):
    with atomic_path(tmp_path / "out.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != tmp_path / "out.png"
        tmp.write_text("new")
    assert (tmp_path / "out.png").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_path_leaves_nothing_on_an_exception(tmp_path):
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"half")
            raise Boom()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old.bin").write_bytes(b"old")
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "old.bin") as tmp:
            tmp.write_bytes(b"half")
            raise Boom()
    assert [p.name for p in tmp_path.iterdir()] == ["old.bin"] and (tmp_path / "old.bin").read_bytes() == b"old"


def test_atomic_dir_leaves_nothing_on_an_exception_and_replaces_a_folder_on_success(tmp_path):
    with pytest.raises(Boom):
        with atomic_dir(tmp_path / "x.avatar") as tmp:
            (tmp / "a.json").write_text("{}")
            raise Boom()
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "x.avatar") as tmp:
        (tmp / "a.json").write_text("1")
    with pytest.raises(Boom):
        with atomic_dir(tmp_path / "x.avatar") as tmp:
            (tmp / "a.json").write_text("2")
            raise Boom()
    assert [p.name for p in tmp_path.iterdir()] == ["x.avatar"]
    assert (tmp_path / "x.avatar" / "a.json").read_text() == "1"
    with atomic_dir(tmp_path / "x.avatar") as tmp:
        (tmp / "b.json").write_text("3")
    assert [p.name for p in tmp_path.iterdir()] == ["x.avatar"]
    assert [p.name for p in (tmp_path / "x.avatar").iterdir()] == ["b.json"]


def test_output_and_input_checks(tmp_path):
    with pytest.raises(OutputError, match="output folder .*nope does not exist"):
        check_writable(tmp_path / "nope" / "f.bin")
    with pytest.raises(OutputError, match="is a folder, expected a file path"):
        check_writable(tmp_path)
    with pytest.raises(InputError, match="none.bin: file not found"):
        check_input_file(tmp_path / "none.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(InputError, match="empty.bin: file is empty"):
        check_input_file(tmp_path / "empty.bin")
    with pytest.raises(InputError, match="is a folder, expected a file"):
        check_input_file(tmp_path)


def _write(folder, meta):
    folder.mkdir(exist_ok=True)
    (folder / "thing.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return folder / "thing.json"


def test_read_format_json_accepts_this_and_older_versions(tmp_path):
    f = _write(tmp_path / "a.thing", {"format": "headsplat.thing", "version": 1, "x": 2})
    assert read_format_json(f, f.parent, "thing", "headsplat.thing", 2)["x"] == 2


def test_read_format_json_refuses_another_format(tmp_path):
    f = _write(tmp_path / "a.thing", {"format": "other", "version": 1})
    with pytest.raises(InputError, match=r"a.thing: not a headsplat thing \(format 'other'\)$"):
        read_format_json(f, f.parent, "thing", "headsplat.thing", 2)
    f = _write(tmp_path / "b.thing", [1, 2])
    with pytest.raises(InputError, match=r"b.thing: not a headsplat thing \(format None\)$"):
        read_format_json(f, f.parent, "thing", "headsplat.thing", 2)


def test_read_format_json_refuses_a_newer_version(tmp_path):
    f = _write(tmp_path / "a.thing", {"format": "headsplat.thing", "version": 3})
    with pytest.raises(InputError, match=r"a.thing: thing format version 3 is newer than this headsplat reads "
                                         r"\(2\); upgrade headsplat$"):
        read_format_json(f, f.parent, "thing", "headsplat.thing", 2)


def test_read_format_json_refuses_bad_json(tmp_path):
    f = _write(tmp_path / "a.thing", "{not json")
    with pytest.raises(InputError, match=r"thing.json: corrupt thing index \("):
        read_format_json(f, f.parent, "thing", "headsplat.thing", 2, kind="index")


def test_check_format_names_the_noun_and_the_format_separately():
    assert check_format({"format": "f", "version": 2}, "x.track", "tracking", "f", 2) == {"format": "f", "version": 2}
    with pytest.raises(InputError, match=r"^x.track: not a headsplat tracking file \(format 'g'\)$"):
        check_format({"format": "g"}, "x.track", "tracking", "f", 2, noun="tracking file")
    with pytest.raises(InputError, match=r"^x.track: tracking format version 9 is newer"):
        check_format({"format": "f", "version": 9}, "x.track", "tracking", "f", 2, noun="tracking file")
