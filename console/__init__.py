"""The Textual operator console. Talks to engine only through its public API, in workers."""
