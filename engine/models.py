"""Model options shared by the CLI commands (run, console, eval): which policy drives the shell.

`--model` names a preset or a hub id / local directory; `--base`/`--adapter` name them separately;
`--endpoint` selects an OpenAI-compatible server. Presets live here so every command agrees.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

BUNDLED_ADAPTER = Path(__file__).resolve().parent / "data" / "smollm2-teletype"
"""The LoRA adapter teletype trained on its own demonstrations (see its README.md model card)."""


def _smollm2() -> str:
    from .smollm import smollm2_dir

    return str(smollm2_dir())


# name -> (base, adapter); a callable base is resolved only when the preset is used.
PRESETS: dict[str, tuple[object, str | None]] = {
    "teletype-mistral": ("mistralai/Mistral-7B-Instruct-v0.2", "tiararodney/Mistral-7B-Teletype"),
    "smollm2": (_smollm2, None),
    "teletype-smollm2": (_smollm2, str(BUNDLED_ADAPTER)),
}
DEFAULT_PRESET = "teletype-smollm2"
"""What `teletype console` runs when no model option is given (CPU-sized, no download)."""


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
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding the endpoint's API key (default OPENAI_API_KEY)")
    g.add_argument("--replay", metavar="RUN", help="with --policy replay: the recording to replay")


@dataclass
class ModelChoice:
    policy: str
    options: dict

    @property
    def label(self) -> str:
        o = self.options
        if self.policy == "hf":
            return o["base"] + (f"+{o['adapter']}" if o.get("adapter") else "")
        if self.policy == "openai":
            return f"{o['model']}@{o['base_url']}"
        return self.policy


def resolve_model(args: argparse.Namespace, default: str | None = "scripted") -> ModelChoice | None:
    """Turn the model options into a policy name and its keyword options (None: no policy)."""
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
        base, adapter = args.base, args.adapter
        if args.model in PRESETS:
            preset_base, preset_adapter = PRESETS[args.model]
            base = base or (preset_base() if callable(preset_base) else preset_base)
            adapter = adapter if adapter is not None else preset_adapter
        elif args.model:
            base = base or args.model
        if not base:
            raise SystemExit("teletype: --policy hf needs --model or --base")
        return ModelChoice("hf", {"base": base, "adapter": adapter, "device": args.device,
                                  "dtype": None if args.dtype == "auto" else args.dtype,
                                  "budget": args.budget, "max_new_tokens": args.max_new_tokens})
    if policy == "openai":
        if not args.endpoint:
            raise SystemExit("teletype: --policy openai needs --endpoint URL")
        return ModelChoice("openai", {"base_url": args.endpoint,
                                      "model": args.endpoint_model or args.model or "default",
                                      "api_key_env": args.api_key_env,
                                      "max_tokens": args.max_new_tokens})
    if policy == "replay":
        if not args.replay:
            raise SystemExit("teletype: --policy replay needs --replay RUN")
        return ModelChoice("replay", {"recording": args.replay})
    return ModelChoice(policy, {})


def build_policy(choice: ModelChoice, scenario=None):
    from .policy import make_policy

    options = dict(choice.options)
    if choice.policy == "scripted":
        options["scenario"] = scenario
    return make_policy(choice.policy, **options)
