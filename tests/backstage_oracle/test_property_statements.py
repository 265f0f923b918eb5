"""Generated skeleton texts beyond single expressions, rendered by envforge and by real
nunjucks: member access and String/Array methods, Backstage's own filters over generated repo
URLs and entity references, and ``{% if %}`` / ``{% for %}`` / ``{% set %}`` around generated
expressions. Bounded for CI by example counts (about 20 s together on one of these machines).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from envforge.errors import ExpressionError
from tests.backstage_oracle import engines
from tests.backstage_oracle.client import Oracle, OracleError
from tests.backstage_oracle.test_property import expressions, json_values

_WORD = st.text(alphabet="abAB-_.1", min_size=0, max_size=6)

repo_urls = st.builds(
    lambda host, owner, repo, extra: f"{host}?" + "&".join(
        p for p in [f"owner={owner}" if owner is not None else "",
                    f"repo={repo}" if repo is not None else "", extra] if p),
    st.sampled_from(["github.com", "gitlab.com", "ghe.example.com", "dev.azure.com",
                     "bitbucket.org"]),
    st.none() | _WORD, st.none() | _WORD,
    st.sampled_from(["", "organization=org", "project=p", "workspace=w", "project=p&workspace=w"]),
)
entity_refs = st.builds(
    lambda kind, ns, name: (f"{kind}:" if kind is not None else "")
    + (f"{ns}/" if ns is not None else "") + name,
    st.none() | st.sampled_from(["group", "User", "component", ""]),
    st.none() | st.sampled_from(["default", "team-ns", ""]),
    st.sampled_from(["team-a", "jane", "svc.x", ""]),
)

MEMBERS = [".length", ".replace('a', 'b')", ".replaceAll('a', 'b')", ".split('-')",
           ".split('-')[0]", ".includes('a')", ".startsWith('a')", ".endsWith('b')",
           ".indexOf('b')", ".slice(1)", ".slice(-2)", ".substring(1, 3)", ".toUpperCase()",
           ".toLowerCase()", ".trim()", ".padStart(8, '*')", ".join('+')", ".concat([1])",
           "[0]", "[1]", ".a", "['b']"]
BACKSTAGE = ["parseRepoUrl", "parseRepoUrl | dump", "projectSlug",
             "parseEntityRef | dump", "parseEntityRef({ defaultKind: 'group' }) | dump",
             "parseEntityRef({ defaultKind: 'user', defaultNamespace: 'ns' }).name",
             "pick('a')", "pick('a.b')", "pick('a[0]')"]


def _check(oracle: Oracle, text: str, values: dict[str, Any]) -> None:
    try:
        expected = oracle.render(text, {"values": values})
    except OracleError:
        assume(False)  # nunjucks (so Backstage) fails too: no answer to compare with
    try:
        got = engines.render_file(text, values)
    except ExpressionError as e:
        raise AssertionError(f"nunjucks renders {text!r} as {expected!r}; envforge: {e}") \
            from None
    assert got == expected, text


CHECKS = settings(max_examples=100, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@CHECKS
@given(expr=expressions, member=st.sampled_from(MEMBERS), v0=json_values, v1=json_values,
       v2=json_values)
def test_members_and_methods_of_generated_values(oracle: Oracle, expr: str, member: str,
                                                 v0: Any, v1: Any, v2: Any) -> None:
    _check(oracle, f"<${{{{ ({expr}){member} }}}}>", {"v0": v0, "v1": v1, "v2": v2})


@CHECKS
@given(url=repo_urls, ref=entity_refs, filter_=st.sampled_from(BACKSTAGE), picked=json_values)
def test_backstage_filters_over_generated_urls_and_refs(oracle: Oracle, url: str, ref: str,
                                                        filter_: str, picked: Any) -> None:
    subject = {"parseRepoUrl": "values.url", "projectSlug": "values.url",
               "parseEntityRef": "values.ref", "pick": "values.obj"}[filter_.split("(")[0]
                                                                       .split(" ")[0]]
    values = {"url": url, "ref": ref, "obj": {"a": picked}}
    _check(oracle, f"<${{{{ {subject} | {filter_} }}}}>", values)


@CHECKS
@given(cond=expressions, items=expressions, value=expressions, v0=json_values, v1=json_values,
       v2=json_values, trim=st.booleans())
def test_statements_around_generated_expressions(oracle: Oracle, cond: str, items: str,
                                                 value: str, v0: Any, v1: Any, v2: Any,
                                                 trim: bool) -> None:
    text = (f"{{% if {cond} %}}\nyes{{% elif {value} %}}elif{{% else %}}no{{% endif %}}\n"
            f"{{% set s = {value} %}}[${{{{ s }}}}]\n"
            f"{{% for x in {items} %}}  ${{{{ loop.index }}}}:${{{{ x }}}};\n{{% endfor %}}end")
    values = {"v0": v0, "v1": v1, "v2": v2}
    try:
        expected = oracle.render(text, {"values": values}, trimBlocks=trim, lstripBlocks=trim)
    except OracleError:
        assume(False)
    got = engines.render_file(text, values, trimBlocks=trim, lstripBlocks=trim)
    assert got == expected, text
