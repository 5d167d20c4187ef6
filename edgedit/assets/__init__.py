"""Models that ship with edgedit (safetensors with their provenance in the metadata).

TEACHER_DIGITS: the EDM teacher of the bundled digits (docs/teacher-digits.md), stored in FP16.
"""

from pathlib import Path

TEACHER_DIGITS = Path(__file__).with_name("teacher-digits.safetensors")
