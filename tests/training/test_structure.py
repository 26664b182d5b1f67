"""The shape of the code: cards round-trip through their one module, every shipped model travels
in the wheel, imports never go in a circle, the command line starts without TensorFlow, and no
module outgrows a screenful of them."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from edge_cifar.model_files import CHECKOUT_MODELS_DIR
from train.card import card_files, read_card

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("train", "edge_cifar")


@pytest.mark.parametrize("card", sorted(CHECKOUT_MODELS_DIR.glob("*.card.json")), ids=str)
def test_a_shipped_card_read_and_written_again_is_the_same_bytes(card: Path) -> None:
    for name, content in card_files(read_card(card)).items():
        assert (card.parent / name).read_bytes() == content, name


@pytest.mark.parametrize(
    "model", sorted(CHECKOUT_MODELS_DIR.glob("*_int8.tflite")), ids=lambda path: path.name
)
def test_a_shipped_model_and_its_card_travel_in_the_wheel(model: Path) -> None:
    # `--model NAME` on a device finds only what `pip install .` put into the package.
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    name = model.name.removesuffix("_int8.tflite")
    for file in (model.name, f"{name}.card.json"):
        assert included.get(f"firmware_models/{file}") == f"edge_cifar/firmware_models/{file}"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Each module's project imports, wherever they stand (top, function or block)."""
    paths = {module_name(p): p for pkg in PACKAGES for p in (REPO_ROOT / pkg).rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        graph[module] = {o for t in targets if (o := owner(t)) and o != module}
    return graph


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = project_imports()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph.get(current, ()))
        return False

    cycles = [(a, b) for a, targets in graph.items() for b in targets if reaches(b, a)]
    assert cycles == []


def test_the_command_line_starts_without_tensorflow() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, train.cli; print(sorted(sys.modules))"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'tensorflow'" not in loaded and "'tf_keras'" not in loaded


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_450_lines(package: str) -> None:
    long = {
        str(p.relative_to(REPO_ROOT)): n
        for p in (REPO_ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 450
    }
    assert long == {}
