"""A run's settings spelled once (nstutil.settings) and the lessons' shared set-up (nstutil.lesson)."""

from __future__ import annotations

import dataclasses

import pytest

import nstutil
from nstutil import NSTError
from nstutil.cli import build_parser
from nstutil import env_int
from nstutil.lesson import plot_runs, setup
from nstutil.settings import Controls, RecipeChoice, bind, check_keywords, field_names, from_options


def test_every_field_is_a_command_line_option_and_back():
    parser = build_parser()
    flags = {action.dest: action.option_strings[-1] for action in parser._actions}
    for kind in (RecipeChoice, Controls):
        for f in dataclasses.fields(kind):
            assert flags[f.name] == f.metadata["flag"]
    args = parser.parse_args(["--style-layers", "relu1_1,relu2_1:0.5", "--style-blend", "3,1", "--scales", "64",
                              "--steps", "20,10", "--style-masks", "a.png,b.png", "--convention", "gatys"])
    recipe, controls = from_options(RecipeChoice, args), from_options(Controls, args)
    assert recipe == RecipeChoice(style_layers={"relu1_1": 1.0, "relu2_1": 0.5}, convention="gatys")
    assert controls == Controls(style_blend=[3.0, 1.0], style_masks=["a.png", "b.png"], scales=[64], steps=[20, 10])
    assert from_options(Controls, parser.parse_args([])) == Controls()        # unset options: the defaults


def test_bind_takes_the_named_values_and_keeps_defaults_for_none():
    values = dict(style_weight=5.0, convention=None, steps=None, scales=[64], unrelated=1)
    assert bind(RecipeChoice, values) == RecipeChoice(style_weight=5.0)
    assert bind(Controls, values) == Controls(scales=[64])
    assert RecipeChoice(style_weight=5.0, tv_weight=0.0).given() == {"style_weight": 5.0, "tv_weight": 0.0}
    assert RecipeChoice(tv_weight=1.0).resolve("gatys") == nstutil.resolve_recipe("gatys", tv_weight=1.0)


def test_unknown_keywords_are_one_line():
    with pytest.raises(NSTError, match="style_wieght"):
        check_keywords(["style_wieght"], RecipeChoice, Controls, where="build_objective")
    with pytest.raises(NSTError, match="content_wieght"):
        nstutil.resolve_recipe("tutorial", content_wieght=1.0)


def test_style_transfer_binds_exactly_the_settings_fields():
    import inspect

    parameters = inspect.signature(nstutil.style_transfer).parameters
    for name in (*field_names(RecipeChoice), *field_names(Controls)):
        assert name in parameters
    assert parameters["steps"].default == Controls().steps


@pytest.mark.parametrize("value, words", [("abc", "'abc' is not a whole number"), ("-1", "at least 1"),
                                          ("0", "at least 1")])
def test_env_int_names_the_variable(monkeypatch, value, words):
    monkeypatch.setenv("NSTUTIL_SIZE", value)
    with pytest.raises(NSTError) as info:
        env_int("NSTUTIL_SIZE", 256)
    assert "NSTUTIL_SIZE" in str(info.value) and words in str(info.value) and "\n" not in str(info.value)
    monkeypatch.setenv("NSTUTIL_SIZE", " 48 ")
    assert env_int("NSTUTIL_SIZE", 256) == 48
    monkeypatch.delenv("NSTUTIL_SIZE")
    assert env_int("NSTUTIL_SIZE", 256) == 256


def test_lesson_setup(monkeypatch, capsys):
    monkeypatch.setenv("NSTUTIL_SIZE", "40")
    monkeypatch.setenv("NSTUTIL_STEPS", "7")
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    lesson = setup(size=256, steps=300, random_means="nothing learned")
    assert (lesson.size, lesson.steps) == (40, 7)
    assert max(lesson.content.shape[-2:]) == 40 and max(lesson.style.shape[-2:]) == 40
    assert lesson.weights == "VGG19 weights: random:0 (RANDOM — nothing learned)"
    assert capsys.readouterr().out == "40 px, 7 evaluations per run; VGG19 weights: random:0 (RANDOM — nothing learned)\n"
    quiet = setup(model=False, show=False)
    assert quiet.model is None and quiet.steps is None and capsys.readouterr().out == ""


def test_plot_runs_draws_curves_per_scale_and_the_images(vgg, make_image):
    content, style = make_image(32, 32), make_image(32, 32, seed=1)
    one = nstutil.style_transfer(content, style, model=vgg, steps=3, progress=False)
    two = nstutil.style_transfer(content, style, model=vgg, scales=[24], steps=2, progress=False)
    fig = plot_runs({"one": one, "two": two}, "title", x="seconds")
    curves, *images = fig.axes
    assert [line.get_label() for line in curves.get_lines()] == ["one", "two, at 24 px", "two, at 32 px"]
    assert len(images) == 2 and images[1].get_title().startswith("two: 4 evaluations")
    with pytest.raises(NSTError, match="'steps'"):
        plot_runs({"one": one}, x="steps")
