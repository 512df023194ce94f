"""Build properties and renderables, with Buildbot's syntax and semantics."""

import pytest

from buildfarm.master.process.properties import (
    Interpolate,
    Properties,
    Property,
    WithProperties,
    renderer,
)


@pytest.fixture
def props():
    p = Properties()
    p.update({"branch": "main", "revision": "abc123", "empty": "", "count": 3}, "Force Build Form")
    return p


def test_property_renders_its_value_or_default(props):
    assert props.render(Property("branch")) == "main"
    assert props.render(Property("missing", default="none")) == "none"
    assert props.render(Property("empty", default="fallback")) == "fallback"
    assert props.render(Property("empty", default="fallback", defaultWhenFalse=False)) == ""


@pytest.mark.parametrize("template, expected", [
    ("%(prop:branch)s-%(prop:revision)s", "main-abc123"),
    ("%(prop:missing:-dflt)s", "dflt"),
    ("%(prop:empty:~dflt)s", "dflt"),
    ("%(prop:branch:+set)s|%(prop:missing:+set)s", "set|"),
    ("%(prop:branch:?|yes|no)s %(prop:empty:?|yes|no)s", "yes no"),
    ("%(prop:empty:#|has|hasnt)s", "has"),
    ("%(kw:who)s built %(prop:count)s", "ci built 3"),
])
def test_interpolate_substitutions(props, template, expected):
    assert props.render(Interpolate(template, who="ci")) == expected


def test_renderables_nest_inside_lists_and_dicts(props):
    command = ["git", "checkout", Property("branch"), {"rev": Interpolate("%(prop:revision)s")}]
    assert props.render(command) == ["git", "checkout", "main", {"rev": "abc123"}]


def test_withproperties_both_forms(props):
    assert props.render(WithProperties("%(branch)s@%(revision)s")) == "main@abc123"
    assert props.render(WithProperties("%s/%s", "branch", "revision")) == "main/abc123"
    assert props.render(WithProperties("%(missing:-x)s")) == "x"


def test_renderer_decorator_gets_the_properties(props):
    @renderer
    def upper_branch(p):
        return p.getProperty("branch").upper()

    assert props.render(upper_branch) == "MAIN"


def test_properties_remember_their_source(props):
    props.setProperty("got_revision", "def", "SetPropertyFromCommand")
    assert props.asDict()["got_revision"] == ("def", "SetPropertyFromCommand")
    assert props.getPropertySource("branch") == "Force Build Form"
    assert props.hasProperty("branch") and not props.hasProperty("nope")
