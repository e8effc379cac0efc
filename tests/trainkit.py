"""What the `teletype train` tests share: the scenarios the end-to-end proof learns, the quick training
flags and a short session (the runs they train on are fixtures in conftest.py)."""
from __future__ import annotations

# Scripted demonstrations of these train-split scenarios are what the end-to-end test learns.
SCENARIOS = ["cleanup/tmp_files", "cleanup/empty_dirs", "file_create/current_symlink", "file_create/hello_script"]
# Enough to memorise four sessions with the tiny model in seconds (the reference defaults need hours).
MEMORISE = ["--epochs", "25", "--lr", "1e-2", "--grad-accum", "1", "--warmup", "0", "--lora-r", "32",
            "--lora-dropout", "0", "--logging-steps", "25"]
QUICK = ["--epochs", "2", "--grad-accum", "2", "--lr", "1e-2", "--logging-steps", "1"]


def short_session(command: str = "cat TASK") -> list[dict]:
    return [{"role": "user", "content": "teletype 0.1.0 host: h user: u shell: /bin/sh\nRead ~/TASK.\nu@h:~$ "},
            {"role": "assistant", "content": command},
            {"role": "user", "content": "touch done\nu@h:~$ "},
            {"role": "assistant", "content": "exit"}]
