"""The hf policy on the tiny model: real transformers, real peft, real KV cache. Nothing is downloaded."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from teletype.engine.model.tinymodel import synthetic_conversation  # noqa: E402
from teletype.engine.policy import Policy, PolicyError, make_policy  # noqa: E402
from teletype.engine.policy.hf import PRESETS, HFPolicy, resolve_dtype  # noqa: E402
from teletype.engine.policy.render import render_training_example  # noqa: E402

STAT_KEYS = {"prompt_tokens", "budget", "cached_tokens", "prefill_tokens", "new_tokens", "prefill_s", "decode_s"}

ORIENTATION = "TELETYPE 0.1 host: sek user: alice shell: /bin/sh\nalice@sek:~$ "
DEMO = [
    {"role": "user", "content": ORIENTATION},
    {"role": "assistant", "content": "cat ~/ASSIGNMENTS"},
    {"role": "user", "content": "Make ~/bin/deploy.sh executable by everyone.\nalice@sek:~$ "},
    {"role": "assistant", "content": "chmod 755 ~/bin/deploy.sh"},
    {"role": "user", "content": "alice@sek:~$ "},
    {"role": "assistant", "content": "exit"},
]


def drive(policy, steps, seed=0):
    """A session where the model's own commands are typed and synthetic outputs come back."""
    outputs = synthetic_conversation(steps, seed=seed)
    messages = [outputs[0]]
    proposals = []
    for k in range(steps):
        streamed = []
        proposal = policy.propose(list(messages), on_token=streamed.append)
        assert "".join(streamed) == proposal.raw
        proposals.append(proposal)
        messages.append({"role": "assistant", "content": proposal.command})
        messages.append(outputs[2 * k + 2])
    return proposals


@pytest.mark.parametrize("budget", [3072, 500])
def test_kv_reuse_gives_the_same_greedy_answers_as_re_encoding(tiny_model_dir, budget):
    reuse = HFPolicy(base=str(tiny_model_dir), max_new_tokens=12, budget=budget)
    full = HFPolicy(base=str(tiny_model_dir), max_new_tokens=12, budget=budget, reuse_cache=False)
    a, b = drive(reuse, 8), drive(full, 8)
    assert [p.raw for p in a] == [p.raw for p in b]
    assert [p.command for p in a] == [p.command for p in b]
    for p, q in zip(a, b):
        assert STAT_KEYS <= set(p.stats)
        assert p.stats["prompt_tokens"] == q.stats["prompt_tokens"] <= budget
        assert p.stats["cached_tokens"] + p.stats["prefill_tokens"] == p.stats["prompt_tokens"]
        assert q.stats["cached_tokens"] == 0 and q.stats["prefill_tokens"] == q.stats["prompt_tokens"]
        assert 0 < p.stats["new_tokens"] <= 12 and p.stats["budget"] == budget
        assert p.stats["prefill_s"] >= 0 and p.stats["decode_s"] >= 0
    # After the first step most of each prompt comes from the cache...
    assert sum(p.stats["prefill_tokens"] for p in a) < sum(q.stats["prefill_tokens"] for q in b)
    if budget == 500:
        # ...and when the window slid, the prompt was prefilled again past the orientation.
        slid = [p for prev, p in zip(a, a[1:]) if p.stats["dropped_turns"] != prev.stats["dropped_turns"]]
        assert slid, "the small budget should make the window slide"
        assert all(p.stats["cached_tokens"] < p.stats["prompt_tokens"] // 2 for p in slid)
    reuse.close()
    full.close()


def test_the_answer_is_bounded_by_max_new_tokens(tiny_model_dir):
    policy = HFPolicy(base=str(tiny_model_dir), max_new_tokens=5)
    proposal = policy.propose([DEMO[0]])
    assert proposal.stats["new_tokens"] == 5 and proposal.stats["stopped"] == "max_new_tokens"
    assert "within 5 tokens" in proposal.stats["note"]
    assert proposal.source == "model"


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA adapter trained (seconds) on one demonstration rendered by teletype.engine.policy.render, saved by peft."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    example = render_training_example(tokenizer, DEMO)
    ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(30):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.05
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def test_an_adapter_directory_loads_and_answers_until_the_end_of_turn(tiny_model_dir, adapter_dir):
    policy = HFPolicy(base=str(tiny_model_dir), adapter=str(adapter_dir), max_new_tokens=40)
    assert policy.name == f"{tiny_model_dir}+{adapter_dir}"
    for k, expected in ((1, "cat ~/ASSIGNMENTS"), (3, "chmod 755 ~/bin/deploy.sh"), (5, "exit")):
        proposal = policy.propose(DEMO[:k])
        assert proposal.command == expected
        assert proposal.stats["stopped"] == "eos"
        assert proposal.stats["new_tokens"] < 40
    # The base model alone says something else: the adapter really was applied.
    base = HFPolicy(base=str(tiny_model_dir), max_new_tokens=8)
    assert base.propose(DEMO[:1]).command != "cat ~/ASSIGNMENTS"


def test_the_registry_builds_it_and_it_is_a_policy(tiny_model_dir):
    policy = make_policy("hf", base=str(tiny_model_dir), max_new_tokens=4, dtype="float32")
    assert isinstance(policy, HFPolicy) and isinstance(policy, Policy)
    assert policy.name == str(tiny_model_dir)
    assert policy.propose([DEMO[0]]).stats["new_tokens"] == 4
    assert policy.cache_kwarg == "cache"  # transformers 5's name
    assert HFPolicy(model=str(tiny_model_dir), max_new_tokens=1).name == str(tiny_model_dir)


def test_bfloat16_on_cpu_runs(tiny_model_dir):
    policy = HFPolicy(base=str(tiny_model_dir), dtype="bfloat16", max_new_tokens=3)
    assert policy.model.dtype == torch.bfloat16
    assert policy.propose([DEMO[0]]).stats["new_tokens"] == 3


def test_the_preset_names_the_reference_model_without_loading_it(monkeypatch):
    seen = {}

    def no_download(self):
        seen.update(base=self.base, adapter=self.adapter, name=self.name)
        raise PolicyError("not loading in tests")

    monkeypatch.setattr(HFPolicy, "_load", no_download)
    with pytest.raises(PolicyError):
        HFPolicy(model="teletype-mistral")
    assert (seen["base"], seen["adapter"]) == PRESETS["teletype-mistral"]
    assert seen["name"] == "mistralai/Mistral-7B-Instruct-v0.2+tiararodney/Mistral-7B-Teletype"


def test_a_missing_model_is_a_clear_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="could not load"):
        HFPolicy(base=str(tmp_path / "no-such-model"))
    with pytest.raises(PolicyError, match="base model"):
        HFPolicy()


def test_dtypes():
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype(None, "cuda") == torch.float16
    assert resolve_dtype("auto", "cuda:0") == torch.float16
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert resolve_dtype(torch.float16, "cpu") == torch.float16
    with pytest.raises(PolicyError, match="dtype"):
        resolve_dtype("int3", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_matches_itself_with_and_without_reuse(tiny_model_dir):
    reuse = HFPolicy(base=str(tiny_model_dir), max_new_tokens=8, device="cuda")
    full = HFPolicy(base=str(tiny_model_dir), max_new_tokens=8, device="cuda", reuse_cache=False)
    assert reuse.model.dtype == torch.float16
    assert [p.raw for p in drive(reuse, 4)] == [p.raw for p in drive(full, 4)]


@pytest.mark.parametrize("budget", [3072, 500])
def test_batched_sessions_keep_their_caches_and_answer_as_if_alone(tiny_model_dir, budget):
    """`teletype eval --jobs N`: sessions of different lengths decoded together, each from its own KV
    cache, give the answers each would get alone (and the window slides as it would alone)."""
    import threading

    from teletype.engine.policy.hfbatch import SharedHF

    alone = HFPolicy(base=str(tiny_model_dir), max_new_tokens=12, budget=budget)
    expected = {}
    for seed in range(4):
        alone.reset()
        expected[seed] = [p.raw for p in drive(alone, 8, seed=seed)]
    alone.close()

    shared = SharedHF(jobs=4, base=str(tiny_model_dir), max_new_tokens=12, budget=budget)
    got, errors = {}, []

    def session(seed):
        try:
            got[seed] = drive(shared.policy(), 8, seed=seed)
        except BaseException as exc:  # reported below, with the seed
            errors.append((seed, exc))

    try:
        threads = [threading.Thread(target=session, args=(seed,)) for seed in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        for seed in range(4):
            assert [p.raw for p in got[seed]] == expected[seed], f"session {seed}"
            later = got[seed][1:]
            assert any(p.stats["cached_tokens"] > 0 for p in later)    # each kept its own cache
            for p in got[seed]:
                assert p.stats["cached_tokens"] + p.stats["prefill_tokens"] == p.stats["prompt_tokens"]
        assert max(shared.batches) > 1                               # and they were decoded together
    finally:
        shared.close()


def test_a_cancelled_generation_stops_and_the_policy_answers_as_before(tiny_model_dir):
    from teletype.engine.policy.base import ProposalCancelled

    fresh = HFPolicy(base=str(tiny_model_dir), max_new_tokens=12)
    expected = [p.raw for p in drive(fresh, 3)]
    fresh.close()

    policy = HFPolicy(base=str(tiny_model_dir), max_new_tokens=12)
    pieces = []

    def stop_after_two(piece):
        pieces.append(piece)
        if len(pieces) == 2:
            raise ProposalCancelled

    with pytest.raises(ProposalCancelled):
        policy.propose([DEMO[0]], on_token=stop_after_two)
    assert len(pieces) == 2
    assert [p.raw for p in drive(policy, 3)] == expected   # its KV cache was left consistent
    policy.close()


def test_fast_decoding_gives_the_models_logits_bit_for_bit(tiny_model_dir):
    """teletype.engine.policy.fastdecode against model.forward, step by step, across a crop and a re-prefill."""
    from teletype.engine.policy.fastdecode import FastDecoder
    from teletype.engine.policy.hf import KVState

    policy = HFPolicy(base=str(tiny_model_dir), fast_decode=True)
    assert policy.fast is not None, FastDecoder.supports(policy.model)
    ids = list(range(5, 60))
    with torch.inference_mode():
        for keep in (None, 30):                 # a fresh cache, then one cropped to 30 positions and refilled
            a, b = KVState(), KVState()
            for kv in (a, b):
                if keep is not None:
                    kv.reuse(ids)
                    kv.forward(policy, ids)
                    kv.reuse(ids[:keep] + [7, 8, 9])
                    kv.forward(policy, [7, 8, 9])
                else:
                    kv.reuse(ids)
                    kv.forward(policy, ids)
            token = 11
            for _ in range(300):                # past the buffer's first slack: it grows on the way
                slow = a.forward(policy, [token])
                fast = policy.fast.step(b, token)
                assert torch.equal(slow, fast)
                token = int(torch.argmax(slow)) if _ % 7 else (token * 31 + 5) % 200
            assert a.ids == b.ids
            for la, lb in zip(a.cache.layers, b.cache.layers):
                assert torch.equal(la.keys, lb.keys) and torch.equal(la.values, lb.values)


def test_sessions_answer_the_same_with_and_without_fast_decoding(tiny_model_dir):
    fast = drive(HFPolicy(base=str(tiny_model_dir), max_new_tokens=24), steps=6, seed=3)
    slow_policy = HFPolicy(base=str(tiny_model_dir), max_new_tokens=24, fast_decode=False)
    assert slow_policy.fast is None
    slow = drive(slow_policy, steps=6, seed=3)
    assert [p.raw for p in fast] == [p.raw for p in slow]
    assert [p.stats["new_tokens"] for p in fast] == [p.stats["new_tokens"] for p in slow]


def test_fast_decoding_refuses_what_it_does_not_compute(tiny_model_dir):
    from teletype.engine.policy.fastdecode import FastDecoder

    policy = HFPolicy(base=str(tiny_model_dir))
    policy.model.config.model_type = "gpt2"
    assert "architecture 'gpt2'" in FastDecoder.supports(policy.model)
    policy.model.config.model_type = "mistral"
    policy.model.config.sliding_window = 16
    assert FastDecoder.supports(policy.model) == "a sliding attention window"


def test_the_thread_governor_switches_counts_between_tokens_and_the_answers_stay_the_same(tiny_model_dir):
    """console, run and eval decode under engine/threads.py's Governor: torch's thread count may change
    between any two tokens. Greedy answers are those of a fixed count, and the stats say what ran."""
    from teletype.engine import threads

    class Flapping:                        # a neighbour that comes and goes at every look
        def __init__(self):
            self.n = 0

        def others(self):
            self.n += 1
            return 1.0 if self.n % 2 else 0.0

    before = torch.get_num_threads()
    fixed = drive(HFPolicy(base=str(tiny_model_dir), max_new_tokens=16), steps=5, seed=2)
    try:
        gov = threads.Governor(2, 1, probe=Flapping())
        threads._GOVERNOR = gov
        governed = drive(HFPolicy(base=str(tiny_model_dir), max_new_tokens=16), steps=5, seed=2)
    finally:
        threads._GOVERNOR = None
        torch.set_num_threads(before)
    assert [p.raw for p in governed] == [p.raw for p in fixed]
    assert gov.used["decode"] == {1, 2} and gov.used["prefill"] <= {1, 2}
    assert all(p.stats["threads"]["decode"] in (1, 2) for p in governed)
    assert all("threads" not in p.stats for p in fixed)            # no governor, nothing claimed
