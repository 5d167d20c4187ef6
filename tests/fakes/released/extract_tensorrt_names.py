"""List the Python names a released TensorRT bindings wheel can expose, without importing it.

Usage (stdlib only; nothing is imported from the wheel, nothing is installed):

    python tests/fakes/released/extract_tensorrt_names.py WHEEL -o OUT.txt
    python tests/fakes/released/extract_tensorrt_names.py WHEEL -o OUT.txt \
        --bindings-source DIR --bindings-ref NVIDIA/TensorRT@v10.3.0

WHEEL is a `tensorrt-cu12-bindings` / `tensorrt-cu13-bindings` wheel as published on PyPI
(`pip download --no-deps --only-binary :all: --platform manylinux_2_17_x86_64 ...`). Its compiled
`tensorrt.so` cannot be imported on a machine without TensorRT's libraries and a GPU, so the names are
read from the artefact itself:

1. identifiers: every NUL-terminated string in the read-only data (`.rodata`) of each ELF shared object
   that is a valid Python identifier. pybind11 keeps every name it registers (classes, methods,
   properties, enum members, keyword arguments) as a C string literal there, so a name edgedit uses
   that is *absent* from this list does not exist in that release. Presence is weaker evidence: the
   list also holds keyword-argument names, C++ strings and names of other classes, and it cannot say
   *which* class a name belongs to.
2. names defined by the bundled Python files (`tensorrt_bindings/__init__.py`, `plugin/*.py`), read
   with `ast` (e.g. `nptype`, `volume`, `Logger.Severity`, `DataType.itemsize`).

Qualified names (`Class.member`) cannot be read reliably from the compiled module alone: the wheels ship
no `.pyi` stubs, and pybind11 composes signatures such as
`get_tensor_name(self: tensorrt.tensorrt.ICudaEngine, index: int) -> str` at import time from templates
like `({%}, {int}) -> str`, so no such string is in the binary; the linker also merges identical string
literals (also into the tails of longer ones), so the order of strings in `.rodata` does not group members
under their class. What the wheel itself gives, each in its own `## qualified: ...` section:

* the bundled Python files (`Class.attr = ...` assignments and class bodies): reliable;
* with `--doc-symbols`, the `.symtab` symbols of NVIDIA's docstring constants,
  `tensorrt::<Class>Doc::<member>` (e.g. `tensorrt::ICudaEngineDoc::get_tensor_name`): hints only. Few
  constants keep a symbol, and the `<Class>Doc` namespace does not always name the Python class (in 10.3,
  `IPluginV3Doc::configure_plugin` documents `IPluginV3OneBuild.configure_plugin`, `BuilderDoc::init`
  is the constructor's text), so 20 of the 10.3 wheel's 222 such pairs are not real attribute names.

For a complete qualified list, pass `--bindings-source DIR`: the pybind11 binding sources of the same
release (`python/src/**/*.cpp` of github.com/NVIDIA/TensorRT at the release tag, e.g. extracted with
`git archive v10.3.0 python/src | tar -x -C DIR`). Their `py::class_<..>(scope, "Name")` /
`py::enum_<..>` chains of `.def("name")`, `.def_property*("name")`, `.def_static("name")`,
`.def_readwrite/readonly("name")`, `.value("NAME")` and `.attr("name") = ...` are parsed (a small
tokenizer, no compiler), and every member is checked against the wheel's identifiers; members whose
name is missing from the wheel are listed in a comment (they would mean the source does not match the
wheel). `--bindings-ref` is the label written into the header (repository@ref).

Output: comment lines (`# ...`) with the wheel's file name, sha256, PyPI page and how the names were
extracted, then the sorted, de-duplicated identifiers one per line, then the `## qualified: ...` sections.
A consumer can read every line not starting with '#'; qualified names are the ones containing a '.'.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import struct
import sys
import zipfile
from pathlib import Path, PurePosixPath

SCRIPT = "tests/fakes/released/extract_tensorrt_names.py"
PRINTABLE = set(range(0x20, 0x7F))


# ---------------------------------------------------------------------------------------------------------
# ELF: the few structures needed (ELF64 little-endian: x86_64 and aarch64 wheels), parsed with struct.
# ---------------------------------------------------------------------------------------------------------

def elf_sections(data: bytes) -> dict[str, tuple[int, int, int, int, int]] | None:
    """{section name: (file offset, size, sh_link, sh_type, address)} of an ELF64 LE file, or None."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for index in range(shnum):
        header = struct.unpack_from("<IIQQQQI", data, shoff + index * shentsize)
        name, sh_type, _flags, addr, offset, size, link = header
        headers.append((name, sh_type, offset, size, link, addr))
    names_offset = headers[shstrndx][2]

    def section_name(offset: int) -> str:
        end = data.index(b"\0", names_offset + offset)
        return data[names_offset + offset:end].decode("ascii", "replace")

    return {section_name(h[0]): (h[2], h[3], h[4], h[1], h[5]) for h in headers}


EM_X86_64, EM_AARCH64 = 62, 183
R_X86_64_RELATIVE, R_AARCH64_RELATIVE = 8, 1027


def referenced_addresses(data: bytes, sections: dict) -> set[int] | None:
    """Virtual addresses the code and relocated data point at, or None for an unknown machine.

    Why: the linker merges a string literal into the tail of a longer one ("INT8" lives inside "UINT8",
    "Runtime" inside "IRuntime"), so the NUL-separated strings of .rodata miss names that pybind11 is
    handed as a pointer into the middle of another string. The pointers are recovered from
    * x86_64: RIP-relative `lea reg, [rip+disp32]` (REX.W 8D /r with mod=00 rm=101) in .text;
    * aarch64: `adrp xN, page` followed within 4 instructions by `add xN, xN, #imm12` in .text;
    * both: R_*_RELATIVE relocations in .rela.dyn (pointer constants such as docstring tables).
    A stray byte pattern may add a false target; it only matters if it lands on an identifier."""
    machine = struct.unpack_from("<H", data, 0x12)[0]
    if machine not in (EM_X86_64, EM_AARCH64) or ".text" not in sections:
        return None
    offset, size, _, _, address = sections[".text"]
    text, targets = data[offset:offset + size], set()
    if machine == EM_X86_64:
        for match in re.finditer(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]", text):
            start = match.start()
            if start + 7 <= len(text):
                disp = struct.unpack_from("<i", text, start + 3)[0]
                targets.add(address + start + 7 + disp)
    else:
        words = [w[0] for w in struct.iter_unpack("<I", text[: len(text) // 4 * 4])]
        for index, word in enumerate(words):
            if word & 0x9F000000 != 0x90000000:  # ADRP
                continue
            register = word & 0x1F
            immediate = ((word >> 3) & 0x1FFFFC) | ((word >> 29) & 0x3)
            if immediate & 0x100000:
                immediate -= 0x200000
            page = ((address + 4 * index) & ~0xFFF) + (immediate << 12)
            for follower in words[index + 1:index + 5]:
                # ADD (immediate), 64-bit, no shift, Rn == Rd == the ADRP register
                if follower & 0xFFC00000 == 0x91000000 and (follower >> 5) & 0x1F == register:
                    targets.add(page + ((follower >> 10) & 0xFFF))
                    break
    relative = R_X86_64_RELATIVE if machine == EM_X86_64 else R_AARCH64_RELATIVE
    for name in (".rela.dyn",):
        if name in sections:
            offset, size, _, _, _ = sections[name]
            relocations = data[offset:offset + size - size % 24]  # Elf64_Rela: r_offset, r_info, r_addend
            for _r_offset, r_info, r_addend in struct.iter_unpack("<QQq", relocations):
                if r_info & 0xFFFFFFFF == relative:
                    targets.add(r_addend)
    return targets


def c_strings(blob: bytes) -> list[str]:
    """The NUL-terminated printable-ASCII strings of a blob.

    A C string literal ends at a NUL; its start is after the last non-printable byte before it (bytes of
    a preceding non-string object are cut off that way)."""
    found = []
    for chunk in blob.split(b"\0"):
        start = len(chunk)
        while start > 0 and chunk[start - 1] in PRINTABLE:
            start -= 1
        if start < len(chunk):
            found.append(chunk[start:].decode("ascii"))
    return found


def so_identifiers(data: bytes, all_sections: bool = False) -> tuple[set[str], str]:
    """Python identifiers among the shared object's C strings (from .rodata unless all_sections).

    Besides the NUL-separated strings, the strings that start where the code points into .rodata are
    read too (tail-merged literals, see referenced_addresses); for an unknown machine every identifier
    suffix of every string is kept instead, so that an absent name is still really absent."""
    sections = None if all_sections else elf_sections(data)
    if not (sections and ".rodata" in sections):
        return {s for s in c_strings(data) if s.isidentifier() and s.isascii()}, "whole file"
    offset, size, _, _, address = sections[".rodata"]
    blob = data[offset:offset + size]
    names = {s for s in c_strings(blob) if s.isidentifier() and s.isascii()}
    targets = referenced_addresses(data, sections)
    if targets is None:
        strings = [s for s in c_strings(blob) if s.isascii()]
        names |= {s[i:] for s in strings for i in range(len(s)) if s[i:].isidentifier()}
        return names, ".rodata, every identifier suffix (unknown machine)"
    merged = set()
    for target in targets:
        start = target - address
        if 0 < start < size and blob[start - 1] != 0:  # points into the middle of a string
            end = blob.find(b"\0", start)
            candidate = blob[start:end].decode("ascii", "replace") if end > start else ""
            if candidate.isidentifier() and candidate.isascii():
                merged.add(candidate)
    return names | merged, f".rodata + {len(merged - names)} tail-merged strings the code points at"


def parse_mangled_nested(symbol: str) -> list[str] | None:
    """`_ZN8tensorrt14ICudaEngineDocL15get_tensor_nameE` -> ['tensorrt', 'ICudaEngineDoc', 'get_tensor_name'].

    Only plain nested names made of <length><identifier> parts (an 'L' marks internal linkage) are
    handled; anything else (templates, functions, substitutions) gives None."""
    if not symbol.startswith("_ZN") or not symbol.endswith("E"):
        return None
    body, parts, pos = symbol[3:-1], [], 0
    while pos < len(body):
        if body[pos] == "L":
            pos += 1
        digits = re.match(r"\d+", body[pos:])
        if not digits:
            return None
        pos += len(digits.group())
        length = int(digits.group())
        parts.append(body[pos:pos + length])
        pos += length
    return parts if all(p.isidentifier() for p in parts) else None


def docstring_symbols(data: bytes) -> set[tuple[str, str]]:
    """(Class, member) pairs from `tensorrt::<Class>Doc::<member>` symbols in .symtab (or .dynsym)."""
    sections = elf_sections(data) or {}
    pairs = set()
    for table in (".symtab", ".dynsym"):
        if table not in sections:
            continue
        offset, size, link, _, _ = sections[table]
        strtab_offset = list(sections.values())[link][0]  # sh_link: index of the string table
        for entry in range(offset, offset + size, 24):  # Elf64_Sym is 24 bytes, st_name first
            name_offset = struct.unpack_from("<I", data, entry)[0]
            end = data.index(b"\0", strtab_offset + name_offset)
            symbol = data[strtab_offset + name_offset:end].decode("ascii", "replace")
            parts = parse_mangled_nested(symbol)
            # <Class>Doc::descr is the class's own docstring, not a member
            if parts and len(parts) == 3 and parts[0] == "tensorrt" and parts[1].endswith("Doc") \
                    and parts[2] != "descr":
                pairs.add((parts[1][:-3], parts[2]))
    return pairs


# ---------------------------------------------------------------------------------------------------------
# Bundled Python files: names they define, read with ast (never executed).
# ---------------------------------------------------------------------------------------------------------

def python_names(source: str, module_prefix: str) -> tuple[set[str], set[str]]:
    """(bare names, qualified names) a Python file defines at module level.

    Qualified: `Class.attr = ...` assignments, methods/attributes of classes defined in the file, and
    `prefix.name` for modules below the package (e.g. `plugin.register`)."""
    tree = ast.parse(source)
    bare, qualified = set(), set()

    def add(name: str) -> None:
        bare.add(name)
        if module_prefix:
            qualified.add(f"{module_prefix}.{name}")

    def targets_of(node):
        if isinstance(node, ast.Assign):
            return node.targets
        if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            return [node.target]
        return []

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            add(node.name)
        elif isinstance(node, ast.ClassDef):
            add(node.name)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qualified.add(f"{node.name}.{item.name}")
                for target in targets_of(item):
                    if isinstance(target, ast.Name):
                        qualified.add(f"{node.name}.{target.id}")
        elif isinstance(node, ast.If):  # e.g. `if "tensorrt" == "tensorrt": Builder.__enter__ = ...`
            for inner in node.body + node.orelse:
                for target in targets_of(inner):
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        qualified.add(f"{target.value.id}.{target.attr}")
                    elif isinstance(target, ast.Name):
                        add(target.id)
        for target in targets_of(node):
            if isinstance(target, ast.Name):
                add(target.id)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                qualified.add(f"{target.value.id}.{target.attr}")
    return {n for n in bare if n.isidentifier()}, qualified


# ---------------------------------------------------------------------------------------------------------
# Optional: pybind11 binding sources (python/src/**/*.cpp of NVIDIA/TensorRT at the release tag).
# ---------------------------------------------------------------------------------------------------------

TOKEN = re.compile(r'''
    (?P<raw>R"(?P<delim>[^()\s]{0,16})\((?:.|\n)*?\)(?P=delim)")   # raw string literal
  | (?P<str>"(?:\\.|[^"\\\n])*")                                   # string literal
  | (?P<chr>'(?:\\.|[^'\\\n])+')                                   # char literal
  | (?P<id>(?:::)?[A-Za-z_]\w*(?:\s*::\s*[A-Za-z_~]\w*)*)          # identifier, possibly qualified
  | (?P<num>\d[\w.]*)
  | (?P<punct>[^\s\w])
''', re.VERBOSE)
# comments, or the literals a comment marker inside them must not be taken from (kept as they are)
COMMENT = re.compile(r'//[^\n]*|/\*.*?\*/'
                     r'|R"([^()\s]{0,16})\((?:.|\n)*?\)\1"|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])+\'',
                     re.DOTALL)
MEMBER_CALLS = {"def", "def_static", "def_property", "def_property_readonly", "def_property_static",
                "def_property_readonly_static", "def_readwrite", "def_readonly", "def_readwrite_static",
                "def_readonly_static", "value", "attr"}
HEADS = {"py::class_", "py::enum_", "pybind11::class_", "pybind11::enum_"}
OPEN, CLOSE = "({[", ")}]"


PREPROCESSOR = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)


def strip_comments(text: str) -> str:
    """Comments and preprocessor lines blanked (string literals kept). Both sides of an #if are read, so
    a name bound only in some builds (e.g. `#if EXPORT_ALL_BINDINGS`) is listed; the check against the
    wheel's strings shows whether this wheel has it."""
    text = COMMENT.sub(lambda m: m.group() if not m.group().startswith("/") else " ", text)
    return PREPROCESSOR.sub(" ", text)


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """[(kind, text, depth)] where depth counts the (, { and [ open around the token."""
    tokens, depth = [], 0
    for match in TOKEN.finditer(strip_comments(text)):
        kind = match.lastgroup if match.lastgroup != "delim" else "raw"
        value = re.sub(r"\s+", "", match.group()) if kind == "id" else match.group()
        if kind == "punct" and value in CLOSE:
            depth -= 1
        tokens.append((kind, value, depth))
        if kind == "punct" and value in OPEN:
            depth += 1
    return tokens


def string_value(token: tuple[str, str, int]) -> str | None:
    return token[1][1:-1] if token[0] == "str" else None


def parse_bindings(text: str, variables: dict[str, str]) -> tuple[dict[str, set[str]], int]:
    """({scope: members}, number of member registrations seen) for one pybind11 source file.

    scope '' is the module itself. `variables` maps C++ variables holding a py::module or py::class_
    to the Python scope they stand for ('m' -> ''); it is updated with the variables declared here."""
    tokens = tokenize(text)
    members: dict[str, set[str]] = {}
    registrations = 0
    i = 0

    def chain(start: int, scope: str, depth: int, is_enum: bool) -> int:
        """Collect `.def("x")`-style calls at `depth` from tokens[start:] up to the closing ';'."""
        nonlocal registrations
        j, names, exported = start, set(), False
        while j < len(tokens):
            _, value, d = tokens[j]
            if d < depth or (value == ";" and d == depth):
                break
            if d == depth and value == "." and j + 1 < len(tokens):
                call = tokens[j + 1][1]
                if call in MEMBER_CALLS and j + 3 < len(tokens) and tokens[j + 2][1] == "(":
                    name = string_value(tokens[j + 3])
                    if name is not None and call != "attr":
                        names.add(name)
                        registrations += 1
                    elif name is not None and [t[1] for t in tokens[j + 4:j + 6]] == [")", "="]:
                        names.add(name)  # m.attr("float32") = DataType::kFLOAT;
                elif call == "export_values":
                    exported = True
            j += 1
        members.setdefault(scope, set()).update(names)
        if is_enum and exported:  # export_values() copies the members into the enclosing scope
            members.setdefault(scope.rpartition(".")[0], set()).update(names)
        return j

    while i < len(tokens):
        kind, value, depth = tokens[i]
        if kind == "id" and value in HEADS and i + 1 < len(tokens) and tokens[i + 1][1] == "<":
            # py::class_<T, ...> [var] (scope, "Name", ...) or {scope, "Name", ...}
            j, angle = i + 2, 1
            while j < len(tokens) and angle:
                angle += {"<": 1, ">": -1}.get(tokens[j][1], 0)
                j += 1
            var = None
            if j < len(tokens) and tokens[j][0] == "id":
                var, j = tokens[j][1], j + 1
            elif i >= 2 and tokens[i - 1][1] == "=" and tokens[i - 2][0] == "id":
                var = tokens[i - 2][1]  # auto var = py::class_<...>(...)
            opens = j + 3 < len(tokens) and tokens[j][1] in ("(", "{")
            if opens and tokens[j + 1][0] == "id" and tokens[j + 2][1] == ",":
                name = string_value(tokens[j + 3])
                if name is not None:
                    parent = variables.get(tokens[j + 1][1], "")
                    scope = f"{parent}.{name}" if parent else name
                    members.setdefault(parent, set()).add(name)
                    members.setdefault(scope, set())
                    if var:
                        variables[var] = scope
                    # skip the constructor's arguments, then read the chain that follows
                    k, open_depth = j + 1, tokens[j][2] + 1
                    while k < len(tokens) and not (tokens[k][1] in CLOSE and tokens[k][2] == open_depth - 1):
                        k += 1
                    i = chain(k + 1, scope, depth, value.endswith("enum_"))
                    continue
        elif (kind == "id" and value in variables and i + 1 < len(tokens) and tokens[i + 1][1] == "."
              and (i == 0 or tokens[i - 1][1] in ";{}")):
            i = chain(i + 1, variables[value], depth, False)
            continue
        i += 1
    return members, registrations


def bindings_from_dir(root: Path) -> tuple[set[str], set[str], list[str], int, int]:
    """(qualified names, module-level names, files read, registrations seen, registrations in the text)."""
    variables = {"m": ""}
    qualified, module_level, files, seen, total = set(), set(), [], 0, 0
    pattern = re.compile(r'\.(?:' + "|".join(sorted(MEMBER_CALLS - {"attr"})) + r')\s*\(\s*"')
    for path in sorted(root.rglob("*.cpp")):
        text = path.read_text(errors="replace")
        members, count = parse_bindings(text, variables)
        files.append(str(path.relative_to(root)))
        seen += count
        total += len(pattern.findall(strip_comments(text)))
        for scope, names in members.items():
            for name in names:
                (qualified.add(f"{scope}.{name}") if scope else module_level.add(name))
    return qualified, module_level, files, seen, total


# ---------------------------------------------------------------------------------------------------------

def wheel_project(wheel: Path) -> tuple[str, str]:
    """(project name, version) from the wheel's file name, e.g. tensorrt_cu12_bindings-10.3.0-... ."""
    name, version = wheel.name.split("-")[:2]
    return name.replace("_", "-"), version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help="a TensorRT Python bindings wheel (.whl)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the name list")
    parser.add_argument("--all-sections", action="store_true",
                        help="read strings from the whole shared object instead of .rodata (more noise)")
    parser.add_argument("--doc-symbols", action="store_true",
                        help="also write the tensorrt::<Class>Doc::<member> symbol hints (unreliable)")
    parser.add_argument("--bindings-source", type=Path,
                        help="folder of the release's pybind11 sources (NVIDIA/TensorRT python/src)")
    parser.add_argument("--bindings-ref", default=None,
                        help="label of that source for the header, e.g. NVIDIA/TensorRT@v10.3.0")
    args = parser.parse_args(argv)

    wheel_bytes = args.wheel.read_bytes()
    sha256 = hashlib.sha256(wheel_bytes).hexdigest()
    project, version = wheel_project(args.wheel)
    identifiers: set[str] = set()
    qualified_python: set[str] = set()
    doc_pairs: set[tuple[str, str]] = set()
    read, package_version = [], None
    with zipfile.ZipFile(args.wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            path = PurePosixPath(info.filename)
            if ".dist-info" in path.parts[0]:
                continue
            if path.suffix == ".so" or ".so." in path.name:
                data = archive.read(info)
                names, where = so_identifiers(data, args.all_sections)
                identifiers |= names
                doc_pairs |= docstring_symbols(data)
                read.append(f"{info.filename} ({where}; {len(names)} identifiers)")
            elif path.suffix in (".py", ".pyi"):
                source = archive.read(info).decode("utf-8", "replace")
                package_dir = PurePosixPath(*path.parts[1:-1])  # below tensorrt_bindings/
                prefix = ".".join(package_dir.parts + (() if path.stem == "__init__" else (path.stem,)))
                bare, qualified = python_names(source, prefix)
                identifiers |= bare
                qualified_python |= qualified
                read.append(f"{info.filename} (ast: {len(bare)} names, {len(qualified)} qualified)")
                if path.stem == "__init__" and len(path.parts) == 2:
                    found = re.search(r'^__version__\s*=\s*"([^"]+)"', source, re.MULTILINE)
                    package_version = found.group(1) if found else None

    lines = [
        f"# wheel: {args.wheel.name}",
        f"# sha256: {sha256}",
        f"# source: https://pypi.org/project/{project}/{version}/",
        f"# extracted by {SCRIPT}",
        f"# tensorrt.__version__ (bundled __init__.py): {package_version}",
        *(f"# read: {entry}" for entry in read),
        "# identifiers: C strings of the shared object(s) that are Python identifiers, plus the names",
        "#   defined by the bundled .py files. Absent here = not in this release; present = some string",
        "#   of that name exists (of any class, or a keyword argument).",
    ]
    lines += sorted(identifiers)
    lines += ["## qualified: bundled Python files (ast; reliable)"] + sorted(qualified_python)
    if args.doc_symbols:
        # keep the pairs whose class name is itself a registered name in the module
        doc_qualified = {f"{cls}.{member}" for cls, member in doc_pairs if cls in identifiers}
        dropped = len(doc_pairs) - len(doc_qualified)
        lines.append("## qualified: .symtab docstring symbols tensorrt::<Class>Doc::<member> (hints only: "
                     "<Class>Doc does not always name the Python class; "
                     f"{dropped} pairs of unregistered <Class> dropped)")
        lines += sorted(doc_qualified)
    summary = f"{args.output}: {len(identifiers)} identifiers, {len(qualified_python)} qualified (.py files)"
    if args.bindings_source:
        qualified, module_level, files, seen, total = bindings_from_dir(args.bindings_source)
        missing = sorted(q for q in qualified | module_level if q.rpartition(".")[2] not in identifiers)
        ref = args.bindings_ref or str(args.bindings_source)
        lines += [
            (f"## qualified: pybind11 sources {ref} (registration chains; {seen} of {total} "
             ".def/.value registrations in the text attributed to a scope)"),
            f"# files: {', '.join(files)}",
            f"# {len(missing)} source names not among this wheel's identifiers: {' '.join(missing) or '-'}",
        ]
        lines += sorted(qualified)
        lines += [f"## module-level: pybind11 sources {ref} (m.def, m.attr, classes and enums on the module)"]
        lines += sorted(module_level)
        summary += f", {len(qualified)} qualified from sources ({seen}/{total} registrations)"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
