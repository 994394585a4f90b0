"""metrics/ imports only torch, numpy, the standard library and itself (docs/design.md §2, house rule);
never fairseq."""

import ast
import pathlib
import sys

import fairseq_dynloss.metrics as metrics

ALLOWED = {"torch", "numpy", "fairseq_dynloss", "__future__"}
# Per-file extras: AUCPR is scikit-learn's; exact nearest neighbours use faiss when installed.
ALLOWED_IN = {"classification.py": {"sklearn"}, "retrieval.py": {"faiss"}}


def test_metrics_import_only_torch_and_stdlib():
    folder = pathlib.Path(metrics.__file__).parent
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(path.name, alias.name.split(".")[0]) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((path.name, node.module.split(".")[0]))
    foreign = {(f, m) for f, m in found
               if m not in ALLOWED | ALLOWED_IN.get(f, set()) and m not in sys.stdlib_module_names}
    assert foreign == set()
    assert ("bleu.py", "fairseq_dynloss") in found  # the scan does see imports
