"""The tests that share an expensive set-up run on one worker (tests/conftest.py).

pytest-xdist's `--dist loadgroup` reads a test's group from a suffix it appends to the
test's id; with some pytest releases the suffix is silently lost and every post would
execute twice, once per worker. These checks run only side by side, as
scripts/test.sh runs them.
"""

import pytest


def _loadgroup(config) -> bool:
    return bool(getattr(config.option, "loadgroup", False))


@pytest.mark.xdist_group("self-check")
def test_xdist_keeps_the_group_of_a_test(request):
    if not _loadgroup(request.config):
        pytest.skip("only side by side, with --dist loadgroup (scripts/test.sh)")
    assert request.node.nodeid.endswith("@self-check"), (
        f"pytest-xdist dropped this test's xdist_group ({request.node.nodeid}): with "
        "this pytest release, tests that share a set-up run on different workers and "
        "repeat it; see the pytest pin in pyproject.toml"
    )


def test_a_posts_two_runs_and_the_sites_users_share_a_group(request):
    if not _loadgroup(request.config):
        pytest.skip("only side by side, with --dist loadgroup (scripts/test.sh)")
    groups: dict[str, set[str]] = {}
    for item in request.session.items:
        name, _, group = item.nodeid.partition("@")
        if "test_posts.py::" in name and "[" in name:
            test = name.split("::")[1].split("[")[0]
            if test in {
                "test_post_executes_cleanly",
                "test_exercise_stubs_are_unsolved_and_solutions_are_ok",
            }:
                post = name.split("[")[1].rstrip("]")
                groups.setdefault(post, set()).add(group)
        if "rendered_site" in getattr(item, "fixturenames", ()):
            groups.setdefault("the rendered site", set()).add(group)
    if not groups:
        pytest.skip("no post's or rendered site's tests in this run")
    split = {what: g for what, g in groups.items() if len(g) != 1 or "" in g}
    assert not split, f"tests that share a set-up are not in one group: {split}"
