"""Options are declared once: refusal of an option another method takes, choices, and the public functions'
defaults agreeing with the declarations the CLI builds its flags from."""

from __future__ import annotations

import inspect

import pytest

from headsplat import api
from headsplat.avatar.generators import GENERATORS, get_generator
from headsplat.avatar.methods import get_method
from headsplat.avatar.options import Option, accepted
from headsplat.core.errors import ArgumentError

GAIN = Option("gain", "a test option", 1.0)
MODE = Option("mode", "a test option with choices", "a", choices=("a", "b"))


def test_accepted_fills_defaults_and_refuses_what_the_owner_does_not_take():
    known = {"gain": GAIN, "mode": MODE}
    assert accepted("the x method", (GAIN,), {"gain": 2.0, "mode": "a"}, known) == {"gain": 2.0}
    assert accepted("the x method", (GAIN, MODE), {}, known) == {"gain": 1.0, "mode": "a"}
    with pytest.raises(ArgumentError, match="^mode: not an option of the x method$") as e:
        accepted("the x method", (GAIN,), {"mode": "b"}, known)
    assert e.value.param == "mode" and e.value.message == "not an option of the x method"
    with pytest.raises(ArgumentError, match="^mode: unknown value 'c'; choose a or b$"):
        accepted("the x method", (MODE,), {"mode": "c"}, known)
    with pytest.raises(ArgumentError, match="^colour: unknown option for the x method$"):
        accepted("the x method", (GAIN,), {"colour": 1}, known)


@pytest.mark.parametrize("function, command, method", [
    (api.create, "create", "headsplat"), (api.create, "create", "gagavatar"),
    (api.animate, "animate", "headsplat"), (api.animate, "animate", "gagavatar"),
    (api.render, "render", "headsplat"), (api.render, "render", "gagavatar"),
    (api.export, "export", "headsplat"), (api.view, "view", "headsplat"),
    (api.eval_reenact, "reenact", "headsplat"), (api.eval_reenact, "reenact", "gagavatar"),
    (api.eval_cross, "cross", "headsplat"), (api.eval_cross, "cross", "gagavatar"),
    *((f, c, "portrait4d") for f, c in ((api.create, "create"), (api.animate, "animate"), (api.render, "render"),
                                        (api.eval_reenact, "reenact"), (api.eval_cross, "cross"))),
])
def test_public_defaults_are_the_declared_ones(function, command, method):
    params = inspect.signature(function).parameters
    for o in get_method(method).options.get(command, ()):
        if o.name in params:
            assert params[o.name].default == o.default, (function.__name__, o.name)


def test_generate_defaults_are_the_declared_ones():
    params = inspect.signature(api.generate).parameters
    for name in GENERATORS.names():
        for o in get_generator(name).options["generate"]:
            assert params[o.name].default == o.default, (name, o.name)


def test_generator_refuses_another_generators_option(tmp_path):
    with pytest.raises(ArgumentError, match="^size: not an option of the cap4d generator$"):
        api.generate(tmp_path / "x.png", tmp_path / "views", model="cap4d", size=256)
    with pytest.raises(ArgumentError, match="^model: unknown generator 'nope'; choose oracle, "):
        api.generate(tmp_path / "x.png", tmp_path / "views", model="nope")
    assert not (tmp_path / "views").exists()
