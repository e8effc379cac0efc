"""Recording and grading: the recording format (recorder.py), export, the checker and the outcome rules."""
