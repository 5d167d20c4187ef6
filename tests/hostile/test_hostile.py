"""The hostile-input sweep (issue 12) as tests: every case in tests/hostile/cases.py must be
refused cleanly. Exit 2; exactly one stderr line, `edgedit: error: ...`, naming the offending
file or option, with no traceback and no internal error; no new file or folder in the case's
folder and every input byte for byte as it was (not even rewritten); within the case's time
limit (a hang is killed and fails) and without a memory blow-up.

Commands run through the console script's entry point in forks of one warm process
(tests/hostile/zygote.py), in the case's own folder. Deselect with `-m "not hostile"`;
`benchmarks/hostile_sweep.py` tallies the same cases against any checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.hostile.cases import CASES, build_base
from tests.hostile.runner import Zygote, run_case

pytestmark = pytest.mark.hostile
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zygote():
    """The warm process, running this checkout's edgedit (not whatever else the environment has)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    process = Zygote(env=env)
    assert Path(process.hello["edgedit"]).resolve().is_relative_to(ROOT), process.hello
    yield process
    process.close()


@pytest.fixture(scope="module")
def hostile_base(zygote, tmp_path_factory):
    """The valid tiny artefacts (teacher, pairs, student, exports, calibration, bench record,
    engine sidecar), made once by the edgedit command line itself."""
    return build_base(tmp_path_factory.mktemp("hostile-base"), zygote.run)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_cleanly(case, hostile_base, zygote, tmp_path):
    verdict = run_case(case, hostile_base, zygote, tmp_path / "case")
    assert verdict.ok, verdict.explain()
