"""The package's layers (docs/architecture.md): every import inside the package points down or stays in its folder.

Read from the source with `ast`, so imports inside functions (the lazy ones) count as much as module-level ones.
"""

import ast
from pathlib import Path

import transformers_chatbridge

PACKAGE = Path(transformers_chatbridge.__file__).parent
# Folder (first name under the package; "" for the model files at its root) -> layer. A module may import from a
# lower layer or from its own folder; never up, never sideways into another folder of its layer.
LAYERS = {
    "": 0,  # the model folder (remote code): model, processors, pipeline, and chat_templates/ with the presets
    "data": 1,  # row format, collator, builders, the miniature world
    "training": 2, "inference": 2,  # TRL training; chat sessions and batch answering
    "evaluation": 3, "convert": 3, "hub": 3,  # benchmarks and metrics; the original release; publishing
    "demo": 4,  # the whole lifecycle
    "cli": 5,  # one module per `chatbridge` subcommand
}


MODEL_FOLDER = {"", "chat_templates"}


def folder_of(module: str) -> str:
    """"transformers_chatbridge.data.rows" -> "data"; the model folder's modules (the package root and its chat
    template presets) -> ""."""
    parts = module.split(".")[1:]
    if parts and (PACKAGE / parts[0]).is_dir() and parts[0] not in MODEL_FOLDER:
        return parts[0]
    return ""


def module_name(path: Path) -> tuple[str, bool]:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in `path`."""
    module, is_package = module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module
            found.append((node.lineno, target))
    return [(line, target) for line, target in found if target.split(".")[0] == PACKAGE.name]


def test_every_folder_has_a_layer():
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and any(path.rglob("*.py"))}
    assert folders <= set(LAYERS) | MODEL_FOLDER, folders - set(LAYERS) - MODEL_FOLDER


def test_imports_point_down():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = folder_of(module_name(path)[0])
        for line, target in imports_of(path):
            imported = folder_of(target)
            if imported != importer and LAYERS[imported] >= LAYERS[importer]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({importer or 'model'}) imports {target}")
    assert not wrong, "\n".join(wrong)
