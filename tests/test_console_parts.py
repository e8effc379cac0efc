"""The console's parts without a running app: the output buffer, the incremental decoder and the
terminal emulator's feeding and rendering, the budget panel, key mapping and the editor's continuation
rule. The app itself is tested in test_console.py."""
from __future__ import annotations

import pytest

from teletype.console.panels import needs_more
from teletype.console.terminal import OutputBuffer
from teletype.console.vt import JUMP_AT, JUMP_KEEP, Feeder, StripRenderer, key_bytes, screen_text


# -- the pane's parts, without a UI ----------------------------------------------------------------
def test_output_buffer_posts_once_until_drained():
    posts = []
    buf = OutputBuffer(lambda: posts.append(1))
    for _ in range(100):
        buf.write(b"y\r\n")
    assert len(posts) == 1
    assert buf.take() == b"y\r\n" * 100 and buf.received == 300
    buf.write(b"x")
    assert len(posts) == 2


def test_one_incremental_decoder_keeps_split_characters_whole():
    f = Feeder(20, 3)
    data = "héllo ✓ 日本\r\n".encode()
    for i in range(len(data)):  # byte by byte: every multi-byte character arrives split
        f.add(data[i:i + 1])
    f.feed()
    assert screen_text(f.screen).startswith("héllo ✓ 日本")
    assert "\ufffd" not in screen_text(f.screen)


def test_jump_scroll_keeps_the_newest_lines_from_a_line_start():
    f = Feeder(40, 10)
    lines = "".join(f"\x1b[1mline\x1b[0m {i}\r\n" for i in range(30000))
    assert len(lines) > JUMP_AT
    f.add(lines.encode())
    assert f.skipped > 0 and JUMP_KEEP - 100 <= len(f.backlog) <= JUMP_KEEP
    assert f.backlog.startswith("\x1b[1mline")
    f.feed()
    assert screen_text(f.screen).splitlines()[-1] == "line 29999"
    assert len(f.screen.history) > 1000


def test_plain_floods_jump_to_the_last_screenfuls():
    f = Feeder(40, 10)
    prompt = "\x1b]7770;nonce;0\x07\x1b[1m$\x1b[0m "
    f.add(("".join(f"line {i}\r\n" for i in range(20000)) + prompt).encode())
    assert f.backlog.count("\n") == 30 and f.backlog.startswith("line 19970")
    f.feed()
    assert screen_text(f.screen).splitlines()[-2:] == ["line 19999", "$"]
    assert f.screen.buffer[9][0].bold


def test_budgeted_feed_stops_early_and_resumes():
    f = Feeder(40, 10)
    f.add(("y\r\n" * 20000).encode())
    f.feed(budget_s=0.001, slice_chars=512)
    assert f.backlog
    while f.backlog:
        f.feed(budget_s=0.05)
    assert screen_text(f.screen).splitlines()[-1] == "y"


def test_scrollback_rows_are_compact_runs_that_render_as_they_were():
    from teletype.console.vt import TermScreen

    screen = TermScreen(30, 2)
    f = Feeder(30, 2, screen)
    f.add("plain \x1b[1;31mbold red\x1b[0m\tend\r\nnext\r\nlast")
    f.feed()
    runs = screen.history[0]
    assert runs == (("plain ", ("default", "default", False, False, False, False, False, False)),
                    ("bold red", ("red", "default", True, False, False, False, False, False)),
                    ("  end", ("default", "default", False, False, False, False, False, False)))
    strip = StripRenderer().history_line(runs, 30)
    assert strip.cell_length == 30 and strip.text.rstrip() == "plain bold red  end"
    assert screen_text(screen, history=True).splitlines() == ["plain bold red  end", "next", "last"]


def test_a_shorter_screen_drops_blank_rows_first_then_scrolls_into_history():
    f = Feeder(20, 10)
    f.add("one\r\ntwo\r\n$ ")
    f.feed()
    f.screen.resize(5, 20)
    assert screen_text(f.screen).splitlines() == ["one", "two", "$"] and not f.screen.history
    f.screen.resize(2, 20)
    assert screen_text(f.screen).splitlines() == ["two", "$"] and len(f.screen.history) == 1
    assert f.screen.cursor.y == 1 and f.screen.cursor.x == 2
    f.screen.resize(6, 12)
    assert f.screen.lines == 6 and screen_text(f.screen).splitlines()[:2] == ["two", "$"]


def test_strips_keep_colours_and_the_cursor():
    f = Feeder(20, 2)
    f.add("\x1b[31mred\x1b[0m \x1b[1;38;5;33mbold\x1b[0m")
    f.feed()
    r = StripRenderer()
    strip = r.line(f.screen.buffer[0], 20, cursor_x=f.screen.cursor.x)
    assert strip.cell_length == 20
    segs = [s for s in strip if s.text.strip()]
    assert segs[0].text == "red" and segs[0].style.color.name == "color(1)"
    assert segs[1].style.bold and segs[1].style.color.triplet is not None
    assert any(s.style.reverse for s in strip)  # the cursor cell


def test_budget_panel_reads_both_model_backends():
    from teletype.console.panels import _timing

    hf = {"prompt_tokens": 1800, "budget": 3072, "cached_tokens": 1500, "prefill_tokens": 300,
          "new_tokens": 12, "prefill_s": 0.04, "decode_s": 0.3}
    assert _timing(hf) == ["prefill 0.04 s (300 tok, 1500 cached)", "decode 0.30 s (12 tok, 40 tok/s)"]
    remote = {"latency_s": 1.5, "first_token_s": 0.5, "new_tokens": 20, "prompt_tokens": 900}
    assert _timing(remote) == ["first token 0.50 s", "decode 1.00 s (20 tok, 20 tok/s)"]
    assert _timing({}) == []


def test_the_status_line_rate_reads_both_model_backends():
    from teletype.console.status import decode_rate

    assert decode_rate({"new_tokens": 12, "decode_s": 0.3}) == "40 tok/s"
    assert decode_rate({"new_tokens": 3, "decode_s": 2.0}) == "1.5 tok/s"
    assert decode_rate({"latency_s": 1.5, "first_token_s": 0.5, "new_tokens": 20}) == "20 tok/s"
    assert decode_rate({"new_tokens": 0, "decode_s": 0.0}) is None and decode_rate(None) is None
    assert decode_rate({"new_tokens": 50, "decode_s": 2.0, "threads": {"prefill": 2, "decode": 1}}) == "25 tok/s on 1 thread"
    assert decode_rate({"new_tokens": 50, "decode_s": 2.0, "threads": {"decode": 2}}) == "25 tok/s on 2 threads"
    assert decode_rate({"new_tokens": 50, "decode_s": 2.0, "threads": "x"}) == "25 tok/s"   # an endpoint's odd stats


def test_keys_map_to_what_a_terminal_sends():
    assert key_bytes("enter", "\r") == b"\r"
    assert key_bytes("ctrl+d", None) == b"\x04"
    assert key_bytes("up", None) == b"\x1b[A" and key_bytes("up", None, app_cursor=True) == b"\x1bOA"
    assert key_bytes("a", "a") == b"a" and key_bytes("ü", "ü") == "ü".encode()


@pytest.mark.parametrize("text, more", [
    ("ls -l", False), ("echo 'open", True), ('echo "a b" \\', True), ("cat > f <<EOF\nx", True),
    ("cat > f <<'EOF'\nx\nEOF", False), ("cat <<-END\n\tx\n\tEND", False), ("echo it\\'s", False),
])
def test_needs_more_follows_the_shell(text, more):
    assert needs_more(text) is more


# -- whole sessions --------------------------------------------------------------------------------
