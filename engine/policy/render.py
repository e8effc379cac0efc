"""The one renderer: conversation -> token ids, for serving (hf policy) and for training (train/).

Why one module: a fine-tuned model only behaves at serve time as it did in training if it sees the very
same token ids. So both sides call the functions here and nothing else builds a prompt:

    render_prompt_ids(tokenizer, messages, budget)          -> list[int]    the serve prompt
    prompt_window(tokenizer, messages, budget)              -> PromptWindow the same, with what was kept
    render_training_examples(tokenizer, messages, budget)   -> [TrainingExample(input_ids, labels)]
    render_training_example(tokenizer, messages, budget)    -> TrainingExample (one window only)

The rules (DESIGN.md, "Conversation"):

1. `normalize_for_template`: leading system turns fold into the first user turn (a system turn after the
   conversation started is a user turn where it stands); consecutive turns of one role merge (joined by a
   newline); the conversation starts with a user turn (an empty one is inserted if needed). The result
   alternates user/assistant strictly.
2. Rendering goes through the tokenizer's own chat template (`apply_chat_template`), never a prompt string
   built here. Where transformers supports it, control tokens that appear in the *content* (a file that
   contains `</s>` or `[INST]`) are encoded as text, so a command's output cannot end a turn.
3. The context is bounded in tokens of the model's own tokenizer (default 3072, the serve prompt
   including the generation prompt):
   - an oversized single output (a user turn over a third of the budget) keeps its tail behind a line
     `[teletype: N earlier lines elided]`;
   - the orientation (the first user turn) always stays;
   - the oldest turns leave first, as assistant/user pairs so alternation holds; the latest pair stays;
   - the window slides rarely: when the prompt would go over the budget, enough old pairs leave to get it
     under a low-water mark (half the budget), not one pair at a time. Between slides each step's
     prompt extends the previous one, so the hf policy's KV cache prefills only the new turn.
   The window of a step is a pure function of the conversation up to that step (it replays the sliding
   from the first step), so training reproduces exactly the windows the model saw when serving.
4. Training: each assistant turn is trained on the window it was served with. Steps served with the same
   window share one example (the windows only grow between slides). Labels are -100 except on the tokens
   of the assistant turns: the command and the end-of-turn token(s), so the model learns to stop. The mask
   comes from rendered prefixes (the prompt rendered with `add_generation_prompt=True` must be a prefix of
   the rendering with the answer), so templates without `{% generation %}` markers (Mistral-7B-Instruct-v0.2)
   work. No trained token at all is an error, never a silent empty example.

Deterministic: no randomness, no clock; the same messages, tokenizer and budget give the same ids.
Token counting, elision and the per-tokenizer lock that makes all this safe across threads are in
teletype.engine.policy.tokens.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from teletype.engine.policy.tokens import count_tokens, elide_output, elision_line, tokenizer_info, tokenizer_lock  # noqa: F401 (re-exported)

DEFAULT_BUDGET = 3072
LOW_WATER = 0.5
"""When a prompt would exceed the budget, old turns leave until it is under this share of the budget."""
OUTPUT_SHARE = 1 / 3
"""One user turn (an output, or the orientation) keeps at most this share of the budget."""
SLACK_PER_MESSAGE = 2
"""Tokens added to each message's estimate for merges across its edges (the exact check has the last word)."""
IGNORE_INDEX = -100

Message = dict


class RenderError(ValueError):
    """The conversation cannot be rendered as asked (bad roles, nothing to train, budget too small...)."""


# -- normalization -------------------------------------------------------------------------------------

def _content(message: Message) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: keep the text ones
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise RenderError(f"message content must be text, got {type(content).__name__}")


def _join(a: str, b: str) -> str:
    if not a:
        return b
    if not b:
        return a
    return a + b if a.endswith("\n") else a + "\n" + b


def normalize_for_template(messages: Sequence[Message]) -> list[Message]:
    """Strict user/assistant alternation starting with a user turn (see the module docstring)."""
    if not messages:
        raise RenderError("no messages to render")
    out: list[Message] = []
    system: list[str] = []
    for m in messages:
        role, content = m.get("role"), _content(m)
        if role == "system":
            if not out:
                system.append(content)
                continue
            role = "user"
        if role not in ("user", "assistant"):
            raise RenderError(f"unsupported role {role!r}; expected system, user or assistant")
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _join(out[-1]["content"], content)
        else:
            out.append({"role": role, "content": content})
    folded = "\n\n".join(s for s in system if s)
    if not out or out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": ""})
    if folded:
        first = out[0]["content"]
        out[0]["content"] = folded + "\n\n" + first if first else folded
    return out


# -- rendering through the chat template -----------------------------------------------------------------

def _render_ids(tokenizer, messages: list[Message], generation_prompt: bool) -> list[int]:
    kwargs = {"tokenize": True, "return_dict": True, "add_generation_prompt": generation_prompt}
    if tokenizer_info(tokenizer).sanitize:
        kwargs["sanitize_control_tokens"] = True
    out = tokenizer.apply_chat_template(messages, **kwargs)
    ids = out["input_ids"]
    return list(ids.tolist() if hasattr(ids, "tolist") else ids)


def _render_text(tokenizer, messages: list[Message], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _overheads(tokenizer) -> tuple[int, int]:
    """Template tokens (first user turn + generation prompt, one assistant/user pair), content excluded."""
    info = tokenizer_info(tokenizer)
    key = getattr(tokenizer, "chat_template", None)
    if not isinstance(key, (str, type(None))):
        key = repr(key)
    if key not in info.overheads:
        u, a = {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}
        cx, cy = info.count(["x", "y"])
        one = len(_render_ids(tokenizer, [u], True))
        two = len(_render_ids(tokenizer, [u, a, u], True))
        info.overheads[key] = (max(0, one - cx), max(0, two - one - cx - cy))
    return info.overheads[key]


def end_of_turn_ids(tokenizer) -> list[int]:
    """The token ids that end an assistant turn: the template's own (the special token(s) it writes after
    the answer: `</s>`, `<|im_end|>`, `<|eot_id|>`...) plus the tokenizer's eos."""
    u, a = {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}
    prompt = _render_ids(tokenizer, [u], True)
    full = _render_ids(tokenizer, [u, a], False)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special |= {i for i, t in decoder.items() if getattr(t, "special", False)}
    ids: list[int] = []
    if full[:len(prompt)] == prompt:
        for tid in full[len(prompt):]:
            if tid in special:
                ids.append(tid)
                break
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise RenderError("cannot tell the end-of-turn token: the template writes no special token after "
                          "an answer and the tokenizer has no eos token")
    return ids


# -- the bounded window ------------------------------------------------------------------------------------

@dataclass
class PromptWindow:
    ids: list[int]
    """The serve prompt (rendered with the generation prompt), at most `budget` tokens."""
    messages: list[Message]
    """What was rendered: the orientation, then the kept turns (outputs possibly elided)."""
    dropped_turns: int
    """Assistant turns (with their outputs) that left the window, oldest first."""
    elided: int
    """User turns (outputs) in the window that were cut behind an elision line."""
    budget: int


def _prepare(tokenizer, messages: Sequence[Message], budget: int) -> tuple[list[Message], int]:
    """Normalized conversation with every oversized user turn elided; and how many were."""
    if budget <= 0:
        raise RenderError(f"the context budget must be positive, got {budget}")
    info = tokenizer_info(tokenizer)
    conv = normalize_for_template(messages)
    cap = max(1, int(budget * OUTPUT_SHARE))
    elided = 0
    for m in conv:
        if m["role"] != "user":
            continue
        key = (m["content"], cap)
        if key not in info.elided:
            if len(info.elided) > 4096:
                info.elided.clear()
            info.elided[key] = elide_output(m["content"], cap, info.count)
        if info.elided[key] != m["content"]:
            m["content"] = info.elided[key]
            elided += 1
    return conv, elided


def _window_messages(conv: list[Message], step: int, start: int) -> list[Message]:
    """Step `step` (1-based) sees the orientation and pairs start..step-1 (pair i = conv[2i-1], conv[2i])."""
    return conv[:1] + conv[2 * start - 1: 2 * step - 1]


def _plan(tokenizer, conv: list[Message], budget: int) -> list[int]:
    """The first kept pair for each step (index s-1 for step s), replaying the sliding from step 1.

    Uses per-message token estimates (content + template overhead + slack); `_exact_window` checks the
    real rendering. A pure function of the conversation so far: the first steps' starts do not depend on
    later turns.
    """
    first_cost, pair_overhead = _overheads(tokenizer)
    sizes = tokenizer_info(tokenizer).count([m["content"] for m in conv])
    steps = len(conv) // 2 + (1 if len(conv) % 2 else 0)  # a step per assistant turn (or prompt to answer)
    low = int(budget * LOW_WATER)
    total = first_cost + sizes[0] + SLACK_PER_MESSAGE
    start = 1
    starts = []
    for s in range(1, steps + 1):
        if s > 1:
            i = s - 1  # pair i just completed: assistant conv[2i-1], output conv[2i]
            total += sizes[2 * i - 1] + sizes[2 * i] + pair_overhead + 2 * SLACK_PER_MESSAGE
            if total > budget:
                while start < s - 1 and total > low:
                    total -= sizes[2 * start - 1] + sizes[2 * start] + pair_overhead + 2 * SLACK_PER_MESSAGE
                    start += 1
        starts.append(start)
    return starts


def _exact_window(tokenizer, conv, step: int, start: int, budget: int) -> tuple[int, list[int]]:
    """The planned window, made to fit by the real token count (more pairs leave if the estimate was low)."""
    while True:
        ids = _render_ids(tokenizer, _window_messages(conv, step, start), True)
        if len(ids) <= budget:
            return start, ids
        if start >= step - 1:
            raise RenderError(
                f"the context budget of {budget} tokens is too small: the orientation and the last turn "
                f"alone render to {len(ids)} tokens")
        start += 1


def prompt_window(tokenizer, messages: Sequence[Message], budget: int = DEFAULT_BUDGET) -> PromptWindow:
    """The serve prompt for `messages` (ending with a user turn) and what it kept."""
    with tokenizer_lock(tokenizer):
        return _prompt_window(tokenizer, messages, budget)


def _prompt_window(tokenizer, messages: Sequence[Message], budget: int) -> PromptWindow:
    conv, _ = _prepare(tokenizer, messages, budget)
    if conv[-1]["role"] != "user":
        raise RenderError("the conversation must end with a user turn (the output and the next prompt)")
    starts = _plan(tokenizer, conv, budget)
    step = len(starts)
    start, ids = _exact_window(tokenizer, conv, step, starts[-1], budget)
    window = _window_messages(conv, step, start)
    originals = normalize_for_template(messages)
    kept_originals = originals[:1] + originals[2 * start - 1:]
    elided = sum(1 for w, o in zip(window, kept_originals) if w["content"] != o["content"])
    return PromptWindow(ids=ids, messages=window, dropped_turns=start - 1, elided=elided, budget=budget)


def render_prompt_ids(tokenizer, messages: Sequence[Message], budget: int = DEFAULT_BUDGET) -> list[int]:
    """Token ids of the serve prompt for `messages` (rendered with add_generation_prompt=True)."""
    return prompt_window(tokenizer, messages, budget).ids


# -- training -----------------------------------------------------------------------------------------------

class TrainingExample(NamedTuple):
    input_ids: list[int]
    labels: list[int]
    """IGNORE_INDEX (-100) except on the trained tokens (each answer and its end-of-turn token(s))."""
    spans: tuple = ()
    """(step, start, end) of each trained turn: labels[start:end] are assistant turn `step`'s tokens."""


def _answer_tokens(tokenizer, window: list[Message], answer: Message, prompt: list[int],
                   step: int) -> tuple[list[int], bool]:
    """The tokens that follow the serve prompt for this answer, and whether they continue the full
    rendering (False: the tokenizer merged the end of the prompt with the answer, so they were tokenized
    on their own from the rendered text)."""
    full = _render_ids(tokenizer, window + [answer], False)
    if full[:len(prompt)] == prompt:
        tokens = full[len(prompt):]
        aligned = True
    else:
        p_text = _render_text(tokenizer, window, True)
        f_text = _render_text(tokenizer, window + [answer], False)
        if not f_text.startswith(p_text):
            raise RenderError(
                f"the chat template is not prefix-stable at assistant turn {step}: the conversation rendered "
                "with the answer does not start with the prompt rendered with add_generation_prompt=True")
        tokens = list(tokenizer(f_text[len(p_text):], add_special_tokens=False)["input_ids"])
        aligned = False
    if not tokens:
        raise RenderError(f"assistant turn {step} renders no token after the prompt: nothing would be trained")
    return tokens, aligned


def render_training_examples(tokenizer, messages: Sequence[Message], budget: int = DEFAULT_BUDGET,
                             trained: Sequence[bool] | None = None) -> list[TrainingExample]:
    """Training examples for one conversation, each assistant turn on the window it is served with.

    Steps that share a window share an example, so a session that never slid gives one example. For
    every trained turn k: the serve prompt ids of turn k followed by the trained tokens of turn k are a
    prefix of the example's input_ids. Trailing user turns after the last answer are ignored.

    `trained[k - 1]` says whether assistant turn k carries loss (default: every turn). A turn left out
    stays in the context of the turns after it, exactly as it was served; only its labels are -100.
    """
    with tokenizer_lock(tokenizer):
        return _render_training_examples(tokenizer, messages, budget, trained)


def _render_training_examples(tokenizer, messages: Sequence[Message], budget: int,
                              trained: Sequence[bool] | None = None) -> list[TrainingExample]:
    conv, _ = _prepare(tokenizer, messages, budget)
    while conv and conv[-1]["role"] == "user":
        conv.pop()
    if len(conv) < 2:
        raise RenderError("nothing to train: the conversation has no assistant turn")
    answers = len(conv) // 2
    if trained is not None and len(trained) < answers:
        raise RenderError(f"the conversation has {answers} assistant turns and only {len(trained)} say "
                          "whether they are trained")
    starts = _plan(tokenizer, conv, budget)
    steps = []  # (step, start, prompt ids)
    for s, planned in enumerate(starts, start=1):
        start, prompt = _exact_window(tokenizer, conv, s, planned, budget)
        steps.append((s, start, prompt))

    examples: list[TrainingExample] = []
    i = 0
    while i < len(steps):
        j = i
        while j + 1 < len(steps) and steps[j + 1][1] == steps[i][1]:
            j += 1
        start, last = steps[i][1], steps[j][0]
        ids = _render_ids(tokenizer, conv[:1] + conv[2 * start - 1: 2 * last], False)
        labels = [IGNORE_INDEX] * len(ids)
        spans = []
        for s, _, prompt in steps[i:j + 1]:
            if trained is not None and not trained[s - 1]:
                continue
            window = _window_messages(conv, s, start)
            tokens, aligned = _answer_tokens(tokenizer, window, conv[2 * s - 1], prompt, s)
            end = len(prompt) + len(tokens)
            if aligned and ids[:end] == prompt + tokens:
                labels[len(prompt):end] = tokens
                spans.append((s, len(prompt), end))
            else:  # the tokenization differs at a turn boundary: this turn gets an example of its own
                examples.append(TrainingExample(prompt + tokens, [IGNORE_INDEX] * len(prompt) + tokens,
                                                ((s, len(prompt), len(prompt) + len(tokens)),)))
        if any(label != IGNORE_INDEX for label in labels):
            examples.append(TrainingExample(ids, labels, tuple(spans)))
        i = j + 1
    if not any(label != IGNORE_INDEX for ex in examples for label in ex.labels):
        raise RenderError("no token is trained: every label is masked")
    return examples


def render_training_example(tokenizer, messages: Sequence[Message],
                            budget: int = DEFAULT_BUDGET) -> TrainingExample:
    """The single training example of a conversation that fits one window (see render_training_examples)."""
    examples = render_training_examples(tokenizer, messages, budget)
    if len(examples) != 1:
        raise RenderError(f"this conversation renders to {len(examples)} examples (its window slid); "
                          "use render_training_examples")
    return examples[0]


__all__ = ["DEFAULT_BUDGET", "IGNORE_INDEX", "LOW_WATER", "OUTPUT_SHARE", "PromptWindow", "RenderError",
           "TrainingExample", "count_tokens", "elide_output", "elision_line", "end_of_turn_ids",
           "normalize_for_template", "prompt_window", "render_prompt_ids", "render_training_example",
           "render_training_examples"]
