"""Model options shared by the CLI commands (run, console, eval): which policy drives the shell.

`--model` names a preset or a hub id / local directory; `--base`/`--adapter` name them separately;
`--endpoint` selects an OpenAI-compatible server. Presets live here so every command agrees.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from teletype.engine.errors import UsageError

BUNDLED_ADAPTER = Path(__file__).resolve().parents[1] / "data" / "smollm2-teletype"
"""The LoRA adapter teletype trained on its own demonstrations (see its README.md model card)."""


def _smollm2() -> str:
    from teletype.engine.model.smollm import smollm2_dir

    return str(smollm2_dir())


# name -> (base, adapter); a callable base is resolved only when the preset is used.
PRESETS: dict[str, tuple[object, str | None]] = {
    "teletype-mistral": ("mistralai/Mistral-7B-Instruct-v0.2", "tiararodney/Mistral-7B-Teletype"),
    "smollm2": (_smollm2, None),
    "teletype-smollm2": (_smollm2, str(BUNDLED_ADAPTER)),
}
DEFAULT_PRESET = "teletype-smollm2"
"""What `teletype console` runs when no model option is given (CPU-sized, no download)."""


def resolve_preset(model: str | None, base: str | None = None, adapter: str | None = None
                   ) -> tuple[str | None, str | None]:
    """(base, adapter) for `model`: a preset's, where `base`/`adapter` do not override them (a
    callable base, the embedded model, is resolved here: it may convert the model once); any other
    name is the base itself. The one place presets are resolved (the CLI and the hf policy)."""
    if model in PRESETS:
        preset_base, preset_adapter = PRESETS[model]
        base = base or (preset_base() if callable(preset_base) else preset_base)
        adapter = adapter if adapter is not None else preset_adapter
    elif model:
        base = base or model
    return base, adapter


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (what proposes the commands)")
    g.add_argument("--policy", choices=["scripted", "replay", "human", "hf", "openai"],
                   help="who proposes commands (default: hf when a model is named, openai with "
                        "--endpoint, else the command's own default)")
    g.add_argument("--model", metavar="NAME",
                   help="a preset (teletype-smollm2: SmolLM2-135M-Instruct with teletype's own adapter, "
                        "CPU; smollm2: the same base alone; teletype-mistral: Mistral-7B-Instruct-v0.2 "
                        "with the reference adapter, GPU), a hub id or a local model directory")
    g.add_argument("--base", metavar="MODEL", help="base model: hub id or local directory")
    g.add_argument("--adapter", metavar="PATH", help="PEFT (LoRA) adapter: hub id or local directory")
    g.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    g.add_argument("--dtype", choices=["auto", "float16", "bfloat16", "float32"], default="auto",
                   help="weights dtype (auto: fp16 on CUDA, fp32 on CPU)")
    g.add_argument("--budget", type=int, default=3072, metavar="TOKENS",
                   help="context bound in tokens, counted with the model's tokenizer (default 3072)")
    g.add_argument("--max-new-tokens", type=int, default=256, metavar="N",
                   help="longest answer generated per step (default 256)")
    g.add_argument("--endpoint", metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--endpoint-model", metavar="NAME", default=None,
                   help="model name sent to the endpoint (default: --model, else 'default')")
    g.add_argument("--endpoint-tokenizer", metavar="MODEL",
                   help="with --endpoint: a tokenizer (a preset, hub id or directory) that bounds the "
                        "context sent, as the hf policy does; default: the preset's own for smollm2 and "
                        "teletype-smollm2, else none (the conversation is sent whole)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key (default OPENAI_API_KEY)")
    g.add_argument("--replay", metavar="RUN", help="with --policy replay: the recording to replay")
    g.add_argument("--detours", type=float, default=0.0, metavar="RATE",
                   help="with --policy scripted: the chance (0-1) that a step is preceded by a recoverable "
                        "detour (a mistyped command, a missing path, a look around, cat of a folder, a first "
                        "look for the assignment in the wrong place, a flood of output), "
                        "recorded with provenance `detour` and left out of the loss by `teletype train` "
                        "(default 0)")
    g.add_argument("--detour-seed", type=int, default=0, metavar="N",
                   help="with --detours: the seed of the detours drawn (per scenario; default 0)")
    from teletype.engine.threads import add_threads_option

    add_threads_option(g)


@dataclass
class ModelChoice:
    policy: str
    options: dict

    @property
    def label(self) -> str:
        """What people see: a preset by its name, never the cache path it resolves to."""
        o = self.options
        if self.policy == "hf":
            base = o.get("base") or o.get("model") or "?"
            return base + (f"+{o['adapter']}" if o.get("adapter") else "")
        if self.policy == "openai":
            return f"{o['model']}@{o['base_url']}"
        return self.policy

    def resolved(self) -> tuple[str, str | None]:
        """(base, adapter) of an hf choice, a preset's base resolved (which may convert the embedded
        model once: call this where that may take a while, not before a UI is up)."""
        o = self.options
        model = o.get("model") if o.get("model") in PRESETS else None
        base, adapter = resolve_preset(model, o.get("base"), o.get("adapter"))
        return str(base), adapter


def resolve_model(args: argparse.Namespace, default: str | None = "scripted") -> ModelChoice | None:
    """Turn the model options into a policy name and its keyword options (None: no policy).

    A preset stays a name here (the hf policy resolves it when it loads), so nothing slow happens
    before the caller is ready; a name that is no preset is looked up at once (check_model)."""
    policy = args.policy
    if policy is None:
        if args.endpoint:
            policy = "openai"
        elif args.model or args.base:
            policy = "hf"
        else:
            policy = default
    if policy is None:
        return None
    if policy == "hf":
        base, adapter, preset = args.base, args.adapter, None
        if args.model in PRESETS:
            preset = args.model
        elif args.model:
            base = base or args.model
        if not base and not preset:
            raise UsageError("teletype: --policy hf needs --model or --base")
        if base:
            check_model(base, "--base" if args.base else "--model")
        options = {"base": base, "adapter": adapter}
        if preset:
            options["model"] = preset
        return ModelChoice("hf", {**options, "device": args.device,
                                  "dtype": None if args.dtype == "auto" else args.dtype,
                                  "budget": args.budget, "max_new_tokens": args.max_new_tokens})
    if policy == "openai":
        if not args.endpoint:
            raise UsageError("teletype: --policy openai needs --endpoint URL")
        served = args.endpoint_model or args.model or "default"
        tokenizer = getattr(args, "endpoint_tokenizer", None)
        if tokenizer is None and served in ("smollm2", "teletype-smollm2"):
            tokenizer = "smollm2"   # what `teletype serve` serves: its own tokenizer counts the budget
        return ModelChoice("openai", {"base_url": args.endpoint, "model": served,
                                      "api_key_env": args.api_key_env,
                                      "max_tokens": args.max_new_tokens,
                                      **({"tokenizer": tokenizer, "budget": args.budget} if tokenizer else {})})
    if policy == "replay":
        if not args.replay:
            raise UsageError("teletype: --policy replay needs --replay RUN")
        return ModelChoice("replay", {"recording": args.replay})
    if policy == "scripted":
        rate = getattr(args, "detours", 0.0) or 0.0
        if not 0.0 <= rate <= 1.0:
            raise UsageError(f"teletype: --detours is a rate from 0 to 1, not {rate}")
        return ModelChoice("scripted", {"detours": rate, "seed": getattr(args, "detour_seed", 0)}
                           if rate else {})
    if getattr(args, "detours", 0.0):
        raise UsageError("teletype: --detours works with the scripted policy only")
    return ModelChoice(policy, {})


HUB_TIMEOUT = 5.0
"""Seconds to wait for the hub when a model name is neither a preset nor a local directory."""


def check_model(name: str, option: str = "--model") -> None:
    """Fail at once, in words, when `name` is not a model teletype can load: not a preset, not a local
    model directory, and not on the hub (or the hub cannot be asked). A local directory or a hub id
    already in the local cache passes without a network call; otherwise one quick request to the hub
    decides (never the retries a model download would make)."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"teletype: {option} {name}: the directory has no config.json "
                             "(expected a transformers model directory)")
        return
    presets = ", ".join(PRESETS)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or path.exists()
    if looks_local:
        raise UsageError(f"teletype: {option} {name}: not a preset ({presets}) and no such directory "
                         f"({path.resolve()})")
    head = (f"teletype: {option} {name!r} is not a preset ({presets}), not a local directory "
            f"(no {path.resolve()}), and ")
    try:
        from huggingface_hub import constants, model_info, try_to_load_from_cache
        from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    except ImportError:
        raise UsageError(head + "huggingface_hub is not installed to look it up on the hub "
                                "(pip install -e '.[model]')") from None
    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # downloaded before: loads offline
    except HFValidationError as exc:
        raise UsageError(head + f"not a valid hub id either ({exc})") from None
    if constants.HF_HUB_OFFLINE:
        raise UsageError(head + "the hub is off (HF_HUB_OFFLINE is set) and it is not in the local "
                                f"cache ({constants.HF_HUB_CACHE})")
    try:
        model_info(name, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        return  # it exists; loading says what access it needs
    except RepositoryNotFoundError:
        raise UsageError(head + f"the hub ({constants.ENDPOINT}) has no model {name!r} (or it is private: "
                                "log in with `hf auth login`)") from None
    except Exception as exc:
        raise UsageError(head + f"the hub ({constants.ENDPOINT}) cannot be reached to look it up "
                                f"({type(exc).__name__}: {exc}); offline, give a preset or a local "
                                "model directory") from None


def build_policy(choice: ModelChoice, scenario=None):
    from teletype.engine.policy import make_policy

    options = dict(choice.options)
    if choice.policy == "scripted":
        options["scenario"] = scenario
    if choice.policy == "openai" and isinstance(options.get("tokenizer"), str) \
            and options["tokenizer"] in PRESETS:
        base = PRESETS[options["tokenizer"]][0]
        options["tokenizer"] = base() if callable(base) else base
    return make_policy(choice.policy, **options)
