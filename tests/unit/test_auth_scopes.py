"""master/auth/scopes.py: satisfaction, expressions, ``unsatisfied`` and role expansion, with the
rules of Taskcluster's scope library (cases written after reading its scopematch, expression and
trie tests; the roles are written with their ``assume:`` prefixes)."""

import time

import pytest

from buildfarm.master.auth.scopes import (
    ExpansionTooLarge,
    RoleIndex,
    ScopeError,
    ScopeSet,
    check_expansion_ends,
    check_expression,
    check_role,
    covers,
    describe,
    normalize,
    satisfies,
    scope_problem,
    unsatisfied,
)

# -- single scopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(("granted", "needed", "expected"), [
    (["foo:bar"], "foo:bar", True),
    (["foo:*"], "foo:bar", True),
    (["foo:*"], "foo:", True),
    (["foo:"], "foo:bar", False),           # no star, no prefix match
    (["foo:bar:*"], "bar:bing", False),     # a star matches a prefix only
    (["bar:*"], "foo:bar:bing", False),
    (["*"], "anything:at:all", True),
    ([""], "foo:bar", False),
    (["foo:bar"], "", False),
    ([], "foo:bar", False),
    (["foo:b*r"], "foo:bar", False),        # a star counts only at the end
    (["foo:b*r"], "foo:b*r", True),
    (["foo*"], "foo*", True),
    (["foo:bar"], "foo:*", False),          # an exact scope never covers a star
])
def test_a_trailing_star_covers_what_starts_with_its_prefix(granted, needed, expected):
    assert ScopeSet(granted).has(needed) is expected
    assert any(covers(g, needed) for g in granted) is expected


@pytest.mark.parametrize("scope", ["a**", "caf\u00e9", "tab\there", "x" * 5000, 3])
def test_bad_scopes_are_named(scope):
    assert scope_problem(scope)


# -- expressions -----------------------------------------------------------------------------


def test_allof_needs_every_member_and_anyof_one():
    granted = ["bar:*", "foo:x"]
    assert satisfies(granted, {"AllOf": ["foo:x", "bar:y"]})
    assert not satisfies(granted, {"AllOf": ["foo:x", "baz:y"]})
    assert satisfies(granted, {"AnyOf": ["foo:y", "bar:y"]})
    assert not satisfies(granted, {"AnyOf": ["foo:y", "baz:y"]})


def test_empty_allof_is_met_and_empty_anyof_never():
    assert satisfies([], {"AllOf": []})
    assert not satisfies(["*"], {"AnyOf": []})
    assert unsatisfied(["*"], {"AnyOf": []}) == {"AnyOf": []}


def test_nested_expressions():
    expr = {"AnyOf": [{"AllOf": ["a", "b"]}, {"AllOf": ["c", {"AnyOf": ["d", "e"]}]}]}
    assert satisfies(["c", "e"], expr)
    assert satisfies(["a", "b"], expr)
    assert not satisfies(["a", "c"], expr)


def test_unsatisfied_is_none_when_met():
    assert unsatisfied(["queue:*"], {"AllOf": ["queue:a", {"AnyOf": ["queue:b", "x"]}]}) is None


def test_unsatisfied_keeps_the_missing_members_of_an_allof():
    assert unsatisfied(["a"], {"AllOf": ["a", "b", "c"]}) == {"AllOf": ["b", "c"]}
    assert unsatisfied(["a", "b"], {"AllOf": ["a", "b", "c"]}) == "c"


def test_unsatisfied_anyof_keeps_all_its_members_simplified():
    expr = {"AnyOf": ["x", {"AllOf": ["a", "b"]}]}
    assert unsatisfied(["a"], expr) == {"AnyOf": ["x", "b"]}


def test_unsatisfied_of_a_single_scope_is_that_scope():
    assert unsatisfied([], "auth:create-role:r") == "auth:create-role:r"


def test_describe_reads_as_text():
    assert describe({"AllOf": ["a", {"AnyOf": ["b", "c"]}]}) == "(a and (b or c))"


@pytest.mark.parametrize("expr", [{"AllOf": "a"}, {"OneOf": ["a"]}, {"AllOf": [], "AnyOf": []}, 5,
                                  {"AllOf": ["ok", "bad**"]}, ["a"]])
def test_malformed_expressions_are_refused(expr):
    with pytest.raises(ScopeError):
        check_expression(expr)
    with pytest.raises(ScopeError):
        satisfies(["*"], expr)


# -- normalisation ---------------------------------------------------------------------------


def test_normalize_sorts_dedupes_and_drops_covered_scopes():
    assert normalize(["q:1", "q:*", "b", "b", "a*", "a", "ab*", "q:", "r"]) == ["a*", "b", "q:*", "r"]


def test_normalize_drops_scopes_below_a_star_that_sorts_after_them():
    # "a!" and "a)" sort before "a*" ('!' and ')' are below '*'), yet "a*" covers them.
    assert normalize(["a!", "a)", "a*", "a+b"]) == ["a*"]


def test_a_bare_star_covers_everything():
    assert normalize(["*", "x", "assume:y", "z*"]) == ["*"]


# -- roles -------------------------------------------------------------------------------------


def expand(roles: dict, *scopes: str) -> list[str]:
    return RoleIndex(roles).expand(scopes)


def test_assume_brings_a_roles_scopes_and_keeps_the_assume_scope():
    assert expand({"thing": ["x:1", "x:2"]}, "assume:thing") == ["assume:thing", "x:1", "x:2"]


def test_unknown_roles_and_other_scopes_expand_to_themselves():
    assert expand({"thing": ["x"]}, "assume:other", "y") == ["assume:other", "y"]


def test_expansion_is_recursive():
    roles = {"a": ["assume:b"], "b": ["assume:c", "B"], "c": ["C"]}
    assert expand(roles, "assume:a") == ["B", "C", "assume:a", "assume:b", "assume:c"]


def test_cycles_end():
    roles = {"a": ["assume:b", "A"], "b": ["assume:a", "B"]}
    assert expand(roles, "assume:a") == ["A", "B", "assume:a", "assume:b"]


def test_a_star_role_applies_to_every_assume_scope_it_prefixes():
    roles = {"repo:github.com/*": ["queue:route:index.gh.*"]}
    assert "queue:route:index.gh.*" in expand(roles, "assume:repo:github.com/org/app:branch:main")
    assert expand(roles, "assume:repo:gitlab.com/org") == ["assume:repo:gitlab.com/org"]


def test_parameterized_roles_get_what_the_star_matched():
    roles = {"project:*": ["secrets:get:project/<..>/*", "index:insert:project.<..>"]}
    assert expand(roles, "assume:project:relman") == [
        "assume:project:relman", "index:insert:project.relman", "secrets:get:project/relman/*"]


def test_a_parameter_ending_in_a_star_cuts_the_scope_after_it():
    roles = {"d*": ["D<..>"], "e*": ["E<..>F"], "h*": ["h<..>i*"]}
    assert expand(roles, "assume:dXY*") == ["DXY*", "assume:dXY*"]
    assert expand(roles, "assume:eXY*") == ["EXY*", "assume:eXY*"]
    assert expand(roles, "assume:eX*Y") == ["EX*YF", "assume:eX*Y"]  # a star inside is text
    assert expand(roles, "assume:h") == ["assume:h", "hi*"]


def test_a_starred_assume_takes_every_role_under_its_prefix():
    roles = {"team:a": ["A"], "team:b": ["B"], "teammate": ["M"], "other": ["O"]}
    assert expand(roles, "assume:team:*") == ["A", "B", "assume:team:*"]


def test_a_starred_assume_gives_parameterized_roles_below_it_a_star():
    roles = {"pr*": ["P<..>x"], "project-*": ["X<..>:y"]}
    # "assume:pro*" is under "pr*" (the parameter is "o*") and covers "project-*" (parameter "*")
    assert expand(roles, "assume:pro*") == ["Po*", "X*", "assume:pro*"]


def test_bare_star_and_assume_prefix_stars_take_every_role():
    index = RoleIndex({"a": ["A"], "b*": ["B<..>"]})
    for scope in ("*", "a*", "assume*", "assume:*"):
        assert sorted(index.direct(scope)) == ["A", "B*"], scope
    assert expand({"a": ["A"]}, "assume:*") == ["A", "assume:*"]
    assert expand({"a": ["A"]}, "*") == ["*"]  # what "*" holds covers the role's scopes


def test_a_role_id_with_a_star_inside_is_only_matched_exactly_or_by_a_star_scope():
    roles = {"a*a": ["A"]}  # the star is not at the end: an exact id
    assert expand(roles, "assume:a*a") == ["A", "assume:a*a"]
    assert expand(roles, "assume:aXa") == ["assume:aXa"]
    assert expand(roles, "assume:a*") == ["A", "assume:a*"]
    assert expand(roles, "assume:a*aa*") == ["assume:a*aa*"]


def test_a_hierarchy_of_star_roles_all_apply():
    roles = {"a*": ["A"], "aa*": ["AA"], "ab*": ["AB"], "abc*": ["ABC"]}
    assert expand(roles, "assume:abcd") == ["A", "AB", "ABC", "assume:abcd"]
    assert expand(roles, "assume:ab*") == ["A", "AB", "ABC", "assume:ab*"]


def test_parameters_chain_through_roles():
    roles = {"a*": ["assume:c<..>A"], "c*": ["e<..>"]}
    assert expand(roles, "assume:abc") == ["assume:abc", "assume:cbcA", "ebcA"]


def test_a_chain_through_a_star_scope_reaches_the_end():
    roles = {"num": ["assume:1*"], "1": ["assume:12"], "12": ["assume:123"], "123": ["GOAL"]}
    assert expand(roles, "assume:num") == ["GOAL", "assume:1*", "assume:num"]


def test_every_caller_may_assume_anonymous_when_given():
    roles = {"anonymous": ["builds:read"]}
    assert expand(roles, "assume:anonymous", "x") == ["assume:anonymous", "builds:read", "x"]


def test_a_parameterized_role_that_feeds_itself_forever_is_stopped():
    roles = {"a*": ["assume:a<..>x"]}
    with pytest.raises(ExpansionTooLarge):
        RoleIndex(roles).expand(["assume:ab"], limit=500)


@pytest.mark.parametrize(("role_id", "scopes"), [
    ("plain", ["x<..>"]),            # <..> needs a star role
    ("p*", ["x<..>y<..>"]),          # twice
    ("p*", ["x*<..>"]),              # ambiguous star
    ("p*", ["ok", "bad**"]),
    ("", ["x"]),
    ("r**", ["x"]),
    ("r", "x"),
])
def test_bad_roles_are_refused(role_id, scopes):
    with pytest.raises(ScopeError):
        check_role(role_id, scopes)


def test_a_good_parameterized_role_is_accepted():
    assert check_role("project:*", ["secrets:get:project/<..>/*"]) == ["secrets:get:project/<..>/*"]


def test_expansion_of_a_thousand_roles_is_fast():
    # 1,000 roles: a chain of 500 assuming each other, 400 parameterized star roles, 100 plain.
    roles = {f"chain-{i:04d}": [f"assume:chain-{i + 1:04d}", f"c:{i}"] for i in range(500)}
    roles.update({f"proj-{i:03d}-*": [f"p:{i}:<..>", "assume:chain-0490"] for i in range(400)})
    roles.update({f"plain-{i:03d}": [f"x:{i}"] for i in range(100)})
    started = time.perf_counter()
    index = RoleIndex(roles)
    chain = index.expand(["assume:chain-0000"])
    star = index.expand(["assume:proj-0*"])
    everything = index.expand(["assume:*"])
    elapsed = time.perf_counter() - started
    assert len(chain) == 500 + 501  # c:0..499 and assume:chain-0000..0500
    assert "p:7:*" in star
    assert "p:399:*" in everything and "x:99" in everything
    assert elapsed < 2.0, elapsed


def test_a_role_set_whose_expansion_never_ends_is_found():
    with pytest.raises(ExpansionTooLarge):
        check_expansion_ends(RoleIndex({"a*": ["assume:a<..>x"]}))
    with pytest.raises(ExpansionTooLarge):  # through another role
        check_expansion_ends(RoleIndex({"a*": ["assume:b<..>"], "b*": ["assume:a<..>y"]}))
    check_expansion_ends(RoleIndex({"a*": ["assume:b<..>"], "b*": ["B<..>"]}))  # ends: no error
