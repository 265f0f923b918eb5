"""A refused credential parameter is named in the error, its value never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from envforge.errors import ParameterError
from envforge.templating.loader import load_template
from envforge.templating.parameters import validate_parameters

TEMPLATE = """\
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata: {name: creds}
spec:
  type: service
  parameters:
    - properties:
        name: {type: string, minLength: 5}
        db_pwd: {type: string, minLength: 12}
        login: {type: string, minLength: 12, "ui:widget": password}
  steps: []
"""


@pytest.fixture
def template(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    return load_template(tmp_path)


@pytest.mark.parametrize("field", ["db_pwd", "login"])
def test_a_refused_credential_is_named_but_not_quoted(template, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParameterError) as caught:
        validate_parameters(template, {field: "hunter2-short"[:7]})
    message = str(caught.value)
    assert field in message
    assert "hunter2" not in message
    assert "minLength" in message


def test_other_fields_still_quote_the_value(template) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ParameterError) as caught:
        validate_parameters(template, {"name": "abc"})
    assert "'abc' is too short" in str(caught.value)
