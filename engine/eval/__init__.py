"""Evaluation: eval runs and reports (evaluate.py), scenario validation, the replay eval (teacherforced.py)."""
