"""A custom import-linter contract: some modules may not import certain *names*.

import-linter's own ``forbidden`` contract works on modules; ``flask.request`` is an object in
the ``flask`` module, so a contract on modules cannot tell ``from flask import request`` from
``from flask import current_app``. This one reads the import lines that grimp recorded.

    [importlinter:contract:services-take-the-actor]
    type = forbidden_names
    source_modules = scm.*.services
    forbidden_names = flask.request
                      flask_login.current_user
"""

import re

from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.helpers import module_expressions_to_modules

_FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+\(?([^)#]*)")


def _imported_names(line: str, package: str) -> set[str]:
    """The names a ``from package import a, b as c`` line takes from ``package``."""
    match = _FROM_IMPORT.match(line)
    if not match or match.group(1) != package:
        return set()
    return {part.split(" as ")[0].strip() for part in match.group(2).split(",") if part.strip()}


class ForbiddenNamesContract(Contract):
    """Source modules must not import any of ``forbidden_names`` (``package.name``)."""

    type_name = "forbidden_names"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    forbidden_names = fields.SetField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        sources = module_expressions_to_modules(graph, self.source_modules, raise_if_unmatched=True)
        violations = []
        for source in sorted(sources, key=lambda m: m.name):
            for forbidden in sorted(self.forbidden_names):
                package, _, name = forbidden.rpartition(".")
                if package not in graph.modules:
                    continue
                for detail in graph.get_import_details(importer=source.name, imported=package):
                    if name in _imported_names(detail["line_contents"], package):
                        violations.append((source.name, detail["line_number"], forbidden))
                output.verbose_print(verbose, f"Checked {source.name} for {forbidden}.")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, line, name in check.metadata["violations"]:
            output.print_error(f"{module}:{line} imports {name}")
        output.new_line()
