"""The package's imports form no cycle: each module can be read knowing only what it imports
(the direction between folders is import-linter's job, in `make lint`)."""

from __future__ import annotations

import grimp


def test_no_module_takes_part_in_an_import_cycle() -> None:
    graph = grimp.build_graph("flashsale")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []
