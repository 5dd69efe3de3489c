"""A griffe extension for the API pages: the docstrings cross-reference with Sphinx roles
(``:class:`~headsplat.avatar.avatar.Avatar```), which Markdown would print as they are; this turns each into a
code span of the name (the last component when it starts with ``~``), before the docstring is parsed."""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


class SphinxRolesToCode(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_plain, obj.docstring.value)
