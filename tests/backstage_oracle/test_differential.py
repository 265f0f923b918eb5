"""envforge renders what Backstage's nunjucks renders, byte for byte: each case through both
engines (real nunjucks 3.2.4 set up as Backstage's templater is the oracle)."""

from __future__ import annotations

from typing import Any

import pytest

from envforge.errors import ExpressionError
from tests.backstage_oracle import engines
from tests.backstage_oracle.client import Oracle, OracleError

VALUES: dict[str, Any] = {
    "name": "demo-service", "owner": "group:default/team-a", "lombok": False, "java": True,
    "count": 1, "ratio": 1.0, "half": 0.5, "tags": ["a", "b"], "nested": [["a", 1], [None]],
    "meta": {"a": 1, "b": "x"}, "nothing": None, "empty": "", "zero": 0, "list0": [],
    "repoUrl": "github.com?owner=acme&repo=shop", "text": "Hello World  wide",
}

#: skeleton file texts, grouped by the class of difference they pin down
FILE_CASES = [
    # JavaScript operators in plain text stay as written; inside tags they compare strictly
    "if (a === b && c !== d) { ${{ values.name }} }",
    "<script>x === y</script>${{ values.count === 1 }} ${{ values.count === '1' }}",
    "${{ values.count == '1' }} ${{ values.count !== 1 }} ${{ values.zero == false }}",
    "${{ values.nothing == values.missing }} ${{ values.nothing === values.missing }}",
    "${{ values.tags == 'a,b' }} ${{ values.list0 == 0 }} ${{ 1 < 2 < 3 }} ${{ 3 > 2 > 1 }}",
    # stringification
    "--lombok=${{ values.lombok }} --java=${{ values.java }} n=${{ values.nothing }}",
    "${{ values.meta }}|${{ values.tags }}|${{ values.nested }}|${{ values.ratio }}",
    "${{ values.half * 2 }} ${{ 10 / 4 }} ${{ 10 / 5 }} ${{ 1 / 3 }} ${{ 2 ** 0.5 }}",
    "${{ 7 % 3 }} ${{ -7 % 3 }} ${{ 7 // 2 }} ${{ -7 // 2 }} ${{ 0.1 + 0.2 }}",
    "${{ values.missing }}|${{ values.missing.deeper }}|${{ values.meta.missing }}",
    # undefined and null in arithmetic and concatenation
    "${{ values.missing + '/' + values.missing }} ${{ values.nothing + 'x' }}",
    "${{ values.count + values.missing }} ${{ values.count + values.nothing }}",
    "${{ values.name + 1 }} ${{ 1 + values.name }} ${{ values.tags + 'c' }}",
    "${{ values.name ~ values.missing ~ values.count }}",
    # truthiness: empty arrays and objects are true
    "${% if values.list0 %}empty-list-true${% endif %}",
    "{% if values.list0 %}L{% endif %}{% if values.meta %}M{% endif %}{% if values.empty %}E"
    "{% endif %}{% if values.zero %}Z{% else %}z{% endif %}",
    "${{ 'yes' if values.list0 else 'no' }} ${{ values.empty or 'dflt' }} "
    "${{ values.tags and 'both' }} ${{ not values.list0 }}",
    "${{ 'x' if values.lombok }}|${{ ('x' if values.lombok) + 'y' }}",
    # filters with nunjucks' own semantics
    "${{ values.name | title }} ${{ 'hello big-world' | title }} ${{ 'aBC dEF' | capitalize }}",
    "${{ values.name | replace('-', '_') }} ${{ 'aaa' | replace('a', 'b', 2) }} "
    "${{ 'ab' | replace('', '-') }}",
    "${{ values.tags | join }} ${{ values.tags | join('-') }} ${{ [1, null, true] | join(',') }}",
    "${{ values.tags | length }} ${{ values.meta | length }} ${{ values.name | length }}",
    "${{ values.missing | default('d') }} ${{ values.nothing | default('d') }} "
    "${{ values.empty | default('d', true) }}",
    "${{ values.meta | dump }} ${{ values.tags | dump(2) }} ${{ values.ratio | dump }}",
    "${{ values.name | upper }} ${{ values.text | lower }} ${{ '  x  ' | trim }}",
    "${{ values.tags | first }} ${{ values.tags | last }} ${{ values.name | first }}",
    "${{ values.tags | reverse }} ${{ values.name | reverse }}",
    "${{ ['b', 'A', 'c'] | sort }} ${{ ['b', 'A', 'c'] | sort(true) }}",
    "${{ '3.7' | int }} ${{ '3.7' | float }} ${{ 2.5 | round }} ${{ 3.14159 | round(2) }}",
    "${{ values.text | truncate(8) }} ${{ values.text | wordcount }}",
    "${{ 'a\nb' | indent(2) }}|${{ 'a\n\nb' | indent(2, true) }}|${{ 'x' | center(5) }}",
    "${{ 'a b&c' | urlencode }} ${{ values.count | string }}",
    # JavaScript members
    "${{ values.name.replaceAll('-', '.') }} ${{ values.name.replace('e', 'E') }}",
    "${{ values.name.split('-') }} ${{ values.name.length }} ${{ values.tags.length }}",
    "${{ values.name.toUpperCase() }} ${{ values.name.startsWith('demo') }} "
    "${{ values.name.includes('serv') }} ${{ values.name.indexOf('x') }}",
    "${{ values.name.slice(-3) }} ${{ values.name.substring(1, 3) }} ${{ values.name[0] }}",
    "${{ values.tags[5] }}|${{ values.tags[-1] }}|${{ values.tags.join('+') }}",
    "${{ values.tags.includes('a') }} ${{ values.tags.indexOf('b') }}",
    "${{ 'b' in values.tags }} ${{ 'serv' in values.name }} ${{ 'a' in values.meta }}",
    # object literals and Backstage's filters
    "${{ {a: 1, 'b': [1, 2]} | dump }}",
    "${{ values.owner | parseEntityRef | dump }}",
    "${{ 'team-a' | parseEntityRef({ defaultKind: 'group', defaultNamespace: 'ns' }) | dump }}",
    "${{ (values.owner | parseEntityRef).name }}",
    "${{ values.repoUrl | parseRepoUrl | dump }} ${{ values.repoUrl | projectSlug }}",
    "${{ values.meta | pick('b') }}",
    # loops and sets
    "{% for t in values.tags %}${{ loop.index }}:${{ t }} {% endfor %}",
    "{% for k, v in values.meta %}${{ k }}=${{ v }};{% endfor %}",
    "{% set x = values.count + 1 %}${{ x }}{# a comment #}",
    "{% for t in values.missing %}x{% else %}none{% endfor %}",
    "{% for k in values.meta %}[${{ k }}]{% endfor %}|{% for c in values.name %}${{ c }}.{% endfor %}",
    # for over null, 0, a number, true: nothing (the else branch); two names over a string or
    # an array of arrays destructure by index (found by test_property_statements)
    "{% for x in values.nothing %}x{% else %}null{% endfor %}|{% for x in values.zero %}x"
    "{% else %}zero{% endfor %}|{% for x in values.count %}x{% endfor %}|"
    "{% for x in values.java %}x{% endfor %}|{% for k, v in values.empty %}x{% endfor %}",
    "{% for i, c in 'ab' %}${{ i }}=${{ c }};{% endfor %}|"
    "{% for a, b in values.nested %}${{ a }}/${{ b }};{% endfor %}|"
    "{% for a, b in [1, 'xy', [2]] %}${{ a }}/${{ b }};{% endfor %}",
    # pick into strings and lengths as lodash's get does
    "${{ values.meta | pick('b[0]') }} ${{ values.tags | pick('0[0]') }} "
    "${{ values | pick('name.length') }} ${{ values | pick('tags.length') }}",
    "${{ 'a' * 3 }} ${{ '3' * '2' }} ${{ values.tags * 2 }} ${{ '%d' % 1 }}",
    # line ends as written (Windows files keep \r\n), around tags and in trimmed blocks
    "kind: Component\r\nname: ${{ values.name }}\r\n{% if values.java %}\r\njava\r\n"
    "{% endif %}\r\nmixed\rold-mac\nunix\r\n",
]


@pytest.mark.parametrize("text", FILE_CASES)
def test_skeleton_text_renders_as_nunjucks_does(oracle: Oracle, text: str) -> None:
    expected = oracle.render(text, {"values": VALUES})
    assert engines.render_file(text, VALUES) == expected


@pytest.mark.parametrize("text", ["a #} b", "#}", "x\n  #}\n", "{% raw %}#}{% endraw %}"])
def test_a_stray_comment_end_fails_where_nunjucks_fails(oracle: Oracle, text: str) -> None:
    try:
        expected: str | None = oracle.render(text, {"values": VALUES})
    except OracleError:
        expected = None
    if expected is None:
        with pytest.raises(ExpressionError, match="unexpected end of comment"):
            engines.render_file(text, VALUES)
    else:
        assert engines.render_file(text, VALUES) == expected


@pytest.mark.parametrize("options", [{"trimBlocks": True}, {"lstripBlocks": True},
                                     {"trimBlocks": True, "lstripBlocks": True}])
def test_block_whitespace_options_with_windows_line_ends(oracle: Oracle,
                                                          options: dict[str, Any]) -> None:
    text = ("a:\r\n  {% if values.java %}\r\n  b: ${{ values.name }}\r\n  {% endif %}\r\n"
            "{%- for t in values.tags %}\r\n- ${{ t }}\r\n{% endfor %}\r\nend\r\n")
    expected = oracle.render(text, {"values": VALUES}, **options)
    assert engines.render_file(text, VALUES, **options) == expected


COMPAT_CASES = [
    "{{ cookiecutter.name }} {{ cookiecutter.count }} {{ cookiecutter.lombok }}",
    "{{ cookiecutter.meta | jsonify }} {{ cookiecutter.tags }}",
]


@pytest.mark.parametrize("text", COMPAT_CASES)
def test_cookiecutter_compat_renders_as_nunjucks_does(oracle: Oracle, text: str) -> None:
    expected = oracle.render(text, {"cookiecutter": VALUES}, compat=True)
    assert engines.render_file(text, VALUES, cookiecutterCompat=True) == expected


VALUE_CASES: list[Any] = [
    "${{ parameters.count }}", "${{ parameters.ratio }}", "${{ parameters.meta }}",
    "${{ parameters.missing }}", "${{ parameters.nothing }}", "${{ parameters.empty }}",
    "x${{ parameters.missing }}", "", "plain", "${{ parameters.tags }}",
    " ${{ parameters.tags }}", "${{ parameters.tags }} ", "${{ parameters.lombok }}",
    "${{ {a: parameters.missing, b: 1} }}", "${{ [parameters.missing, 1] }}",
    "${{ parameters.count + 1 }}", "${{ parameters.name | title }}",
    "${{ parameters.name }}-${{ parameters.count }}",
    ["${{ parameters.missing }}", "${{ parameters.count }}", "", "a"],
    {"a": "${{ parameters.missing }}", "b": "", "c": {"d": "${{ parameters.meta.b }}"}},
    "${{ parameters.owner | parseEntityRef }}",
    "${{ parameters.count === 1 }}", "${{ '1' == 1 }}",
]


@pytest.mark.parametrize("value", VALUE_CASES)
def test_template_values_reach_actions_as_in_backstage(oracle: Oracle, value: Any) -> None:
    context = {"parameters": VALUES}
    assert engines.render_value(value, context) == oracle.render_value(value, context)
