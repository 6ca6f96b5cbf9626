"""The package's floors (ARCHITECTURE.md): which folder may import which, thin commands, small modules."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Set

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "nnunetv2_openvocab"
SIDECARS = ("dataset_conversion", "caption_curation")
# what the two sidecar packages may use of the plugin: prompt meaning and the shared safety pieces
SIDECAR_CORE = (f"{PACKAGE}.prompts", f"{PACKAGE}.atomic_files", f"{PACKAGE}.user_errors", f"{PACKAGE}.safe_loading",
                f"{PACKAGE}.image_integrity", f"{PACKAGE}.json_input")
COMMANDS = f"{PACKAGE}.commands"
COMMAND_HELPERS = {f"{COMMANDS}.prediction_arguments"}  # flags shared by two commands; not an entry itself
MAX_MODULE_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Set[str]:
    """Every module a file imports, at any depth of the file (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules(package: str) -> Dict[str, Path]:
    return {module_name(path): path for path in sorted((REPO / package).rglob("*.py"))}


def test_the_plugin_never_imports_the_sidecars_outside_the_commands_layer():
    offending = {name: sorted(i for i in imports_of(path) if i.split(".")[0] in SIDECARS)
                 for name, path in modules(PACKAGE).items() if not name.startswith(COMMANDS)}
    assert not {name: found for name, found in offending.items() if found}


def test_the_sidecars_import_only_the_documented_core_of_the_plugin():
    for package in SIDECARS:
        for name, path in modules(package).items():
            used = {i for i in imports_of(path) if i.startswith(PACKAGE)}
            outside = sorted(i for i in used if not any(i == core or i.startswith(core + ".") for core in SIDECAR_CORE))
            assert not outside, f"{name} imports {outside}; the sidecars may use only {SIDECAR_CORE}"


def test_no_command_imports_another_command():
    commands = {name for name in modules(PACKAGE) if name.startswith(COMMANDS + ".")} - COMMAND_HELPERS
    for name in commands:
        borrowed = {i for i in imports_of(modules(PACKAGE)[name]) if any(i == c or i.startswith(c + ".")
                                                                          for c in commands)}
        assert not borrowed, f"{name} imports the command module(s) {sorted(borrowed)}; move what they share into a " \
                             f"library module"


def test_every_console_script_is_a_command_module_with_main():
    scripts = re.findall(r'"(\w+) = ([\w.]+):(\w+)"', (REPO / "setup.py").read_text(encoding="utf-8"))
    assert len(scripts) >= 13
    commands = modules(PACKAGE)
    for script, module, function in scripts:
        assert module.startswith(COMMANDS + ".") and module in commands, (script, module)
        assert function == "main" and "def main(" in commands[module].read_text(encoding="utf-8"), script


def test_no_module_is_longer_than_the_limit():
    too_long = {str(path.relative_to(REPO)): lines for package in (PACKAGE, *SIDECARS)
                for path in (REPO / package).rglob("*.py")
                if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not too_long


def test_the_import_walk_sees_function_level_imports(tmp_path):
    # the rules above are only as good as this walk: a deferred import must count too
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from dataset_conversion.merge import merge_by_ids\n", encoding="utf-8")
    assert "dataset_conversion.merge" in imports_of(source)


TEXT_PROMPTS_READ = re.compile(r"""\[\s*(TEXT_PROMPTS_KEY|["']text_prompts["'])\s*\]|\.get\(\s*(TEXT_PROMPTS_KEY|["']text_prompts["'])""")
PROMPT_LOWERED = re.compile(r"\b\w*prompt\w*(\[[^\]]*\])?\.lower\(\)")


def test_one_parser_of_text_prompts_and_no_ad_hoc_prompt_identity():
    # prompts/ owns prompt meaning; model_spec reads its own checkpoint record, which is not a dataset.json
    allowed_readers = {f"{PACKAGE}.prompts.dataset_prompts", f"{PACKAGE}.prompts.validation", f"{PACKAGE}.model_spec"}
    for package in (PACKAGE, *SIDECARS):
        for name, path in modules(package).items():
            text = path.read_text(encoding="utf-8")
            if name not in allowed_readers:
                assert not TEXT_PROMPTS_READ.search(text), f"{name} parses text_prompts; use prompts.TrainingPrompts"
            if not name.startswith(f"{PACKAGE}.prompts"):
                assert not PROMPT_LOWERED.search(text), f"{name} lower-cases a prompt; use prompt_text.prompt_identity"


FLOORS = {  # ARCHITECTURE.md's table: a module may import its own floor or lower ones
    **dict.fromkeys(["user_errors", "atomic_files", "safe_loading", "json_input", "image_integrity", "output_folder",
                     "constants", "raw_datasets", "trainer_discovery", "aligned_checkpoint", "paper_presets",
                     "example_dataset", "paper_tables"], 0),
    "prompts": 1, "text": 2, "model_spec": 3, "network": 3, "planning": 4, "training": 5, "nnunet_trainer_shims": 5,
    "inference": 6, "evaluation": 7, "pretraining": 7, "memory_estimate": 7, "demo": 8, "server": 8, "reproduction": 8,
    "commands": 9,
}
ORCHESTRATION = {f"{PACKAGE}.inference.{name}" for name in ("predictor", "file_prediction", "run_prediction",
                                                                  "prompt_answers")}


def floor_of(module: str) -> int:
    return FLOORS[module.split(".")[1]]


def test_no_import_runs_up_a_floor():
    for name, path in modules(PACKAGE).items():
        if name == PACKAGE:
            continue
        own = floor_of(name)
        above = sorted(i for i in imports_of(path)
                       if i.startswith(PACKAGE + ".") and i.split(".")[1] in FLOORS and floor_of(i) > own)
        assert not above, f"{name} (floor {own}) imports {above} from a higher floor"
        if name.startswith(f"{PACKAGE}.inference.outputs"):
            assert not imports_of(path) & ORCHESTRATION, f"{name}: writers never call back into the predictor"
