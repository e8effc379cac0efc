"""The session at run time: the pty shell (shell.py), the session loop (session.py), the printout
the model reads, and stopping on signals."""
