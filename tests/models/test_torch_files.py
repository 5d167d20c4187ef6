import ast
import os
import pickle
from pathlib import Path

import pytest
import torch

import edgedit
from edgedit.contract.errors import EdgeditError
from edgedit.models.torch_files import load_tensors


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("pwned"),))


class Unlink:
    def __reduce__(self):
        return (os.unlink, ("keep",))


def test_tensors_and_containers_round_trip(tmp_path):
    torch.save({"w": torch.ones(2), "lists": [torch.zeros(1), 3]}, tmp_path / "ok.pt")
    loaded = load_tensors(tmp_path / "ok.pt")
    assert torch.equal(loaded["w"], torch.ones(2)) and loaded["lists"][1] == 3


def test_a_poisoned_pickle_is_refused_in_one_line_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(1), "x": Payload()}, tmp_path / "bad.pt")
    with pytest.raises(EdgeditError, match=r"bad.pt: refused pickle global \w+: .*never unpickles them; re-") as err:
        load_tensors(tmp_path / "bad.pt", trusted_hint="re-save it")
    assert "\n" not in str(err.value) and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])  # GLOBAL (0, 2) and STACK_GLOBAL (4, 5) opcodes
def test_a_plain_pickle_names_its_global_from_the_opcodes_without_running_it(tmp_path, monkeypatch, protocol):
    """Not a torch.save zip: torch.load stops at an opcode it does not take, before any global; edgedit
    names the global from the opcodes (pickletools parses, never runs)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep").touch()
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"x": Unlink()}, protocol=protocol))
    with pytest.raises(EdgeditError, match=r"bad.pkl: refused pickle global (posix|os)\.unlink: "):
        load_tensors(tmp_path / "bad.pkl")
    assert (tmp_path / "keep").exists()


@pytest.mark.parametrize("content", [b"", b"not a zip", pickle.dumps([1, 2])[:5]])
def test_damaged_files_are_one_line_without_torch_warnings(tmp_path, content, recwarn):
    (tmp_path / "d.pt").write_bytes(content)
    with pytest.raises(EdgeditError, match=r"d.pt: not a readable PyTorch file"):
        load_tensors(tmp_path / "d.pt")
    assert not recwarn.list


def test_nothing_else_in_edgedit_calls_torch_load():
    callers = []
    for path in Path(edgedit.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                callers.append(path.name)
    assert callers == ["torch_files.py"]
