"""A tiny Mistral-architecture model, built locally, so tests and demos run real transformers code.

`build_tiny_model(out_dir, seed=0)` writes a directory that loads through exactly the code path a hub
model does (`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`):

- a byte-level BPE tokenizer trained here with the `tokenizers` library on a small built-in corpus of
  shell-ish text (a few hundred tokens of vocabulary), with `<unk>`, `<s>`, `</s>` at ids 0, 1, 2 (as in
  Mistral) and `[INST]`/`[/INST]` as control tokens (as in Mistral's later tokenizers), so a command that
  starts with punctuation cannot merge with the end of the prompt;
- a Mistral-Instruct-style chat template, `<s>[INST] user [/INST]assistant</s>[INST] ...`, with
  `{% generation %}` markers around each assistant answer and its `</s>`, so TRL-style assistant masks work
  with it too;
- a `MistralForCausalLM` of a few hundred thousand parameters. `initializer_range` is 0.2, not the usual
  0.02: with small weights the logits are nearly flat and greedy decoding says the same token forever,
  and a LoRA adapter needs minutes instead of seconds to move it.

Everything is deterministic for a seed (the same files, byte for byte). Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

# The chat template. Roles must alternate user/assistant after `normalize_for_template`; anything else is
# a bug upstream, so the template refuses it the way Mistral's own does.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{{- '[INST] ' + message['content'] + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + eos_token }}{%- endgeneration %}"
    "{%- else %}"
    "{{- raise_exception('only user and assistant roles are supported') }}"
    "{%- endif %}"
    "{%- endfor %}"
)

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]
VOCAB_SIZE = 512

# What a teletype conversation looks like: banners, motds, prompts, commands and their output.
_CORPUS = r"""
TELETYPE 0.1 host: sek user: alice shell: /bin/sh
Welcome, alice. Your assignments live in ~/ASSIGNMENTS.
alice@sek:~$ cat ~/ASSIGNMENTS
Make ~/bin/deploy.sh executable by everyone.
alice@sek:~$ ls -la
total 16
drwxr-xr-x 3 alice alice 4096 Jan  1 00:00 .
drwxr-xr-x 3 root  root  4096 Jan  1 00:00 ..
-rw-r--r-- 1 alice alice   44 Jan  1 00:00 ASSIGNMENTS
drwxr-xr-x 2 alice alice 4096 Jan  1 00:00 bin
-rw-r--r-- 1 alice alice  220 Jan  1 00:00 .profile
alice@sek:~$ chmod 755 ~/bin/deploy.sh
alice@sek:~$ ls -l bin/deploy.sh
-rwxr-xr-x 1 alice alice 120 Jan  1 00:00 bin/deploy.sh
alice@sek:~$ mkdir -p ~/backup/2024 && cp notes.txt ~/backup/2024/
alice@sek:~$ echo "hello world" > greeting.txt
alice@sek:~$ cat greeting.txt
hello world
alice@sek:~$ grep -rn "TODO" ~/src
/home/alice/src/main.c:12: /* TODO: free the buffer */
alice@sek:~$ find . -name "*.log" -size +1M
./var/log/app.log
alice@sek:~$ rm -f ./var/log/app.log
alice@sek:~$ sed -i 's/debug=true/debug=false/' config.ini
alice@sek:~$ tar -czf archive.tar.gz docs/
alice@sek:~$ mv report.txt reports/report-2024.txt
alice@sek:~$ printenv TASKS
~/ASSIGNMENTS
alice@sek:~$ wc -l data.csv
42 data.csv
alice@sek:~$ head -n 3 data.csv
id,name,score
1,ada,97
2,bob,85
alice@sek:~$ sort -t, -k3 -n data.csv | tail -n 1
1,ada,97
alice@sek:~$ cat missing.txt
cat: missing.txt: No such file or directory
alice@sek:~$ Sure, here is the command
sh: 1: Sure,: not found
alice@sek:~$ touch /etc/passwd
touch: cannot touch '/etc/passwd': Permission denied
alice@sek:~$ cat > notes.txt <<'EOF'
remember the milk
EOF
alice@sek:~$ provider --help
usage: provider [--list] [--fetch NAME] [--submit FILE]
alice@sek:~$ provider --list
alpha
beta
alice@sek:~$ for f in *.txt; do echo "$f"; done
greeting.txt
notes.txt
alice@sek:~$ panic the disk is read-only
alice@sek:~$ exit
"""


_COMMANDS = ["cat ~/ASSIGNMENTS", "ls -la", "ls -l bin", "printenv TASKS", "provider --help", "provider --list",
             "grep -rn TODO ~/src", "find . -name '*.log'", "wc -l data.csv", "head -n 20 data.csv",
             "cat notes.txt", "chmod 755 ~/bin/deploy.sh", "mkdir -p ~/backup", "tar -czf archive.tar.gz docs/",
             "sort -t, -k3 -n data.csv", "cat /var/log/app.log", "sed -n '1,40p' config.ini", "ps aux"]


def synthetic_conversation(steps: int, seed: int = 0, prompt: str = "alice@sek:~$ ") -> list[dict]:
    """A made-up session of `steps` commands with outputs of realistic sizes (mostly a few lines, some
    tens, now and then a couple of hundred), ending with a user turn: for tests and benchmarks."""
    import random

    rng = random.Random(seed)
    messages = [{"role": "user", "content": (
        "TELETYPE 0.1 host: sek user: alice shell: /bin/sh\n"
        "Welcome, alice. Your assignments live in ~/ASSIGNMENTS.\n" + prompt)}]
    for step in range(steps):
        command = rng.choice(_COMMANDS)
        roll = rng.random()
        n = rng.randint(0, 3) if roll < 0.55 else rng.randint(5, 30) if roll < 0.92 else rng.randint(80, 200)
        lines = []
        for i in range(n):
            kind = rng.random()
            if kind < 0.4:
                lines.append(f"-rw-r--r-- 1 alice alice {rng.randint(10, 99999):>6} Jan {rng.randint(1, 28):>2} "
                             f"00:{rng.randint(0, 59):02d} file{step}_{i}.txt")
            elif kind < 0.7:
                lines.append(f"{i},{rng.choice(['ada', 'bob', 'eve', 'mallory'])},{rng.randint(0, 100)}")
            else:
                lines.append(f"/home/alice/src/main{step}.c:{rng.randint(1, 999)}: /* TODO: line {i} */")
        messages.append({"role": "assistant", "content": command})
        messages.append({"role": "user", "content": "".join(line + "\n" for line in lines) + prompt})
    return messages


def corpus() -> str:
    """The built-in training text of the tokenizer: the lines above (also in the chat format) and one
    synthetic session (seed 1000; tests and benchmarks use other seeds), so a session costs a plausible
    number of tokens (about 2 characters a token on synthetic sessions, not 1.6 as without it)."""
    lines = _CORPUS.strip("\n").splitlines()
    chat = []
    for line in lines:
        if "$ " in line:
            prompt, command = line.split("$ ", 1)
            chat.append(f"[INST] {prompt}$  [/INST]{command}</s>")
    session = "".join(m["content"] + "\n" for m in synthetic_conversation(40, seed=1000))
    return "\n".join(lines) + "\n" + "\n".join(chat) + "\n" + session


def build_tokenizer():
    """The byte-level BPE tokenizer, trained on `corpus()`, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = corpus()
    tok.train_from_iterator([text] * 3, trainer=trainer, length=3)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        model_max_length=8192, chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False)


def build_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny model and its tokenizer to `out_dir` (created) and return its path."""
    import torch
    from transformers import GenerationConfig, MistralConfig, MistralForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=96,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        max_position_embeddings=8192,
        sliding_window=None,  # Mistral-7B-Instruct-v0.2 has none either
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    # Seed a private generator state so building does not disturb (nor depend on) the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MistralForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
