import pytest

from headsplat.core.config import config_file, configured_path
from headsplat.core.errors import InputError

ENV = "HEADSPLAT_TEST_SETTING"


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    f = tmp_path / "cfg" / "headsplat" / "config.json"
    f.parent.mkdir(parents=True)
    return f


def test_config_file_follows_xdg_config_home_or_defaults_to_dot_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_file() == tmp_path / "headsplat" / "config.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_file() == tmp_path / "home" / ".config" / "headsplat" / "config.json"


def test_configured_path_order_is_argument_then_environment_then_file(settings, monkeypatch):
    assert configured_path(None, ENV, "key") is None  # no settings file yet
    settings.write_text('{"key": "~/from_file", "other": "/x"}')
    assert configured_path(None, ENV, "key").name == "from_file"
    assert "~" not in str(configured_path(None, ENV, "key"))  # user folder expanded
    assert configured_path(None, ENV, "missing_key") is None
    monkeypatch.setenv(ENV, "/from/env")
    assert str(configured_path(None, ENV, "key")) == "/from/env"
    assert str(configured_path("/from/arg", ENV, "key")) == "/from/arg"
    monkeypatch.setenv(ENV, "")
    assert configured_path(None, ENV, "key").name == "from_file"  # an empty variable is unset


@pytest.mark.parametrize("text", ["{broken", "[1, 2]"])
def test_a_settings_file_that_is_not_a_json_object_is_an_input_error(settings, text):
    settings.write_text(text)
    with pytest.raises(InputError, match=f"{settings}: not a valid headsplat config file"):
        configured_path(None, ENV, "key")
