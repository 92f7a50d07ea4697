"""The settings reference: every ``AUTHGATE_*`` variable with its type, default and description.

Descriptions are the ``#:`` comments above each field of ``Settings`` in ``config.py`` (or a
``Field(description=…)``); types, defaults and bounds come from the pydantic model itself.
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from authgate.config import OAuthProviderConfig, Settings

ENV_PREFIX = "AUTHGATE_"
UNDOCUMENTED = "*(no description yet: add a `#:` comment above the field in `config.py`)*"


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """What the reference says about one field."""

    name: str
    env: str
    type: str
    default: str
    bounds: str
    description: str
    secret: bool

    @property
    def documented(self) -> bool:
        return bool(self.description)


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment block right above each annotated field of ``model``'s class body."""
    source_file = inspect.getsourcefile(model)
    if source_file is None:
        raise LookupError(f"no source file for {model.__name__}")
    lines = Path(source_file).read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    comments: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == model.__name__):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            block: list[str] = []
            index = stmt.lineno - 2  # the line above, 0-based
            while index >= 0 and lines[index].strip().startswith("#:"):
                block.insert(0, lines[index].strip()[2:].strip())
                index -= 1
            if block:
                comments[stmt.target.id] = " ".join(block)
    return comments


def rst_to_markdown(text: str) -> str:
    """The comments use reST literals (````x````); Markdown wants single backticks."""
    return text.replace("``", "`")


def type_label(annotation: Any) -> str:
    """A reader's name for a field's type: the accepted values where they are a closed set."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_label(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin in (typing.Union, types.UnionType):
        names = [type_label(arg) for arg in args if arg is not type(None)]
        label = " or ".join(names)
        return f"{label} (optional)" if type(None) in args else label
    if origin in (list, set, frozenset, tuple):
        inner = type_label(args[0]) if args else "value"
        return f"list of {inner}"
    if origin is dict:
        return "JSON object"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
        if issubclass(annotation, SecretStr):
            return "secret string"
        if issubclass(annotation, bool):
            return "boolean (`true`/`false`)"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "number"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, Path):
            return "path"
        return annotation.__name__
    return str(annotation)


def is_secret(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, SecretStr):
        return True
    return any(is_secret(arg) for arg in typing.get_args(annotation))


def default_label(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value) if value.is_absolute() else f"./{value}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def bounds_label(field: FieldInfo) -> str:
    parts: list[str] = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} characters")
        elif isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length} characters")
    return ", ".join(parts)


def setting_docs(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> list[SettingDoc]:
    """One entry per field of ``model``, in the order of the class."""
    comments = field_comments(model)
    docs: list[SettingDoc] = []
    for name, field in model.model_fields.items():
        description = field.description or comments.get(name, "")
        docs.append(
            SettingDoc(
                name=name,
                env=f"{prefix}{name.upper()}",
                type=type_label(field.annotation),
                default=default_label(field),
                bounds=bounds_label(field),
                description=rst_to_markdown(description),
                secret=is_secret(field.annotation),
            )
        )
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The Markdown of ``reference/settings.md``."""
    docs = setting_docs()
    out = [
        "# Settings reference",
        "",
        "Every environment variable authgate reads, generated from `Settings`",
        "(`src/authgate/config.py`) when the site is built: names, types, defaults and bounds come",
        "from the model, descriptions from the `#:` comment above each field. Variables are also",
        "read from a `.env` file in the working directory. List values take a JSON list or a",
        "comma-separated string. What production refuses to start with is in",
        "[the API contract](../api.md#2-settings) and [the security model](../security.md).",
        "",
        f"{len(docs)} settings.",
        "",
        "| variable | default |",
        "| --- | --- |",
    ]
    for doc in docs:
        anchor = doc.env.lower()
        out.append(f"| [`{doc.env}`](#{anchor}) | `{_cell(doc.default)}` |")
    out.append("")
    for doc in docs:
        out += [f"## `{doc.env}` {{#{doc.env.lower()}}}", ""]
        out.append(doc.description or UNDOCUMENTED)
        out += ["", f"- **Type**: {doc.type}" + (" — a secret, never logged" if doc.secret else "")]
        out.append(f"- **Default**: `{doc.default}`")
        if doc.bounds:
            out.append(f"- **Bounds**: {doc.bounds}")
        out.append("")
    out += [
        "## Entries of `AUTHGATE_OAUTH_PROVIDERS` {#oauth-provider-entries}",
        "",
        "Each entry of the JSON list is an object with these members (see",
        "[the OAuth guide](../oauth.md#configuration)):",
        "",
        "| member | type | default | description |",
        "| --- | --- | --- | --- |",
    ]
    for doc in setting_docs(OAuthProviderConfig, prefix=""):
        out.append(
            f"| `{doc.name}` | {_cell(doc.type)} | `{_cell(doc.default)}` "
            f"| {_cell(doc.description)} |"
        )
    out.append("")
    return "\n".join(out)
