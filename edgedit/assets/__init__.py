"""Models that ship with edgedit (safetensors with their provenance in the metadata).

TEACHER_DIGITS: the EDM teacher of the bundled digits (docs/teacher-digits.md), stored in FP16.
STUDENT_DIGITS: the best one-step DiT-Nano student of the digits design sweep
(docs/results-digits.md), distilled from the teacher's pairs; its sweep evaluation is in its provenance.
"""

from pathlib import Path

TEACHER_DIGITS = Path(__file__).with_name("teacher-digits.safetensors")
STUDENT_DIGITS = Path(__file__).with_name("student-digits.safetensors")
