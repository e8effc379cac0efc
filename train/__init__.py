"""LoRA SFT on teletype recordings, rendered by teletype.engine.policy.render (the serve-time renderer).

This docstring is train/'s README.

Usage
-----
    teletype train RECORDINGS... --base MODEL --out DIR [options]

    teletype train runs/ --base mistralai/Mistral-7B-Instruct-v0.2 --out adapters/v1
    teletype train runs/ --base ./tiny --out /tmp/lora --dry-run -v      # what would be trained, and why not
    teletype train runs/ --base ./tiny --out /tmp/lora --resume          # continue the latest checkpoint
    teletype train runs/ --base ./tiny --out /tmp/lora --merge           # also DIR/merged
    accelerate launch -m teletype.train.cli runs/ --base MODEL --out DIR --grad-accum 2   # 4 GPUs, batch still 8

RECORDINGS are run directories, folders of them, trajectory.json files or a `teletype export` JSONL.
Then `teletype run|eval|console ... --base MODEL --adapter DIR` serves the adapter (HFPolicy), and
`PeftModel.from_pretrained(base, DIR)` loads it anywhere.

The contract: one renderer
--------------------------
train/ never builds a prompt. Every session goes through `teletype.engine.policy.render.render_training_examples`
(normalize_for_template, the model's own chat template, the bounded context of `--budget` tokens with
the same window slides as serving), so each assistant turn is trained on exactly the token ids the hf
policy feeds the model at that step. Labels are -100 except on the assistant turns: the command (or
the final exit/panic) and the end-of-turn token, so the model learns to stop. The mask comes from
rendered prefixes, so templates without `{% generation %}` markers (Mistral-7B-Instruct-v0.2's) work.
tests/test_train.py checks the ids and labels against `render_prompt_ids`, turn by turn.

Which sessions
--------------
Verified, cleanly ended sessions (success, or correct_panic) by default, and never a held-out split
unless asked by name (`--split heldout`, `--include-heldout`): an adapter that saw the held-out
scenarios makes `teletype eval heldout` meaningless. `--all` keeps unclean sessions, `--source`
filters by the provenance of every turn (model, edited, operator, scripted, replay), `--archetype`
and `--split` by scenario. An exported JSONL is used as it is. The command prints how many sessions,
examples and trained tokens it uses and why the others were skipped (`-v` lists each).

Decisions
---------
- Defaults are the reference run (teletype.train.config.TrainConfig documents every field): LoRA r=16, alpha
  32, dropout 0.05 on q/k/v/o; 3 epochs, lr 2e-4 linear, 3% warmup; batch 1 x 8 accumulation; fp16
  on CUDA (fp32 LoRA weights under autocast), fp32 on CPU. Every field is a flag.
- An example longer than `--max-length` (4096) is an error naming the recording, never a truncation:
  the renderer makes each turn's serve prompt a prefix of its example, so no cut keeps every trained
  token on the prompt it was served with. With the default budget (3072) only an answer of 1000+
  tokens can trigger it; lower `--budget` (here and when serving) or raise `--max-length`.
- A session with nothing to train (no assistant turn) is an error naming the recording.
- `--out` holding checkpoints of an earlier run is refused unless `--resume` continues it.
- Right padding (PadCollator); padding positions get attention 0 and labels -100.
  `--group-by-length` lowers padding when `--batch-size` > 1 (bench/bench_train.py measures it).

Output (DIR)
------------
adapter_config.json + adapter_model.safetensors (the adapter), the tokenizer (HFPolicy prefers it),
checkpoint-N/ (adapter, optimiser, scheduler, RNG; --save-steps), README.md (a model card: base, data,
counts, config, the command that reproduces the run), merged/ with --merge (a plain transformers model).

Modules: config (TrainConfig and its flags), data (selection, rendering, collator), trainer (Trainer +
peft, saving, merging, the card), cli (`teletype train` and `python -m teletype.train.cli`).
"""
