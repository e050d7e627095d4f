"""Long fuzz run: ``tox -e fuzz -- --examples 1000000 [--json PATH]``.

Half of ``--examples`` goes to the host channel, half to the guest agent
(tests/fuzz/targets.py). For each, Hypothesis first draws
``--hypothesis-examples`` structure-aware inputs (tests/fuzz/inputs.py) in
batches of fresh seeds, which also fill a corpus of pieces; the rest are
made from that corpus by mutation (tests/fuzz/mutate.py), which is about a
hundred times cheaper to generate. The resident set size is sampled as the
run goes: once warmed up (the first tenth of the run) it may grow by at
most ``--max-rss-growth-mb``. A failing Hypothesis input is shrunk and
printed; a failing mutated input is written to ``--failure-file`` for
``--replay``. Exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import resource
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.fuzz import inputs, mutate, targets


def rss_mb() -> float:
    """The current resident set size in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mb() -> float:
    """The largest resident set size so far in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch(run: Callable[[inputs.FuzzInput], None], strategy: Any, examples: int, batch_seed: int,
          shrink: bool = True) -> None:
    """Run one Hypothesis batch of ``examples`` inputs through ``run``."""
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @seed(batch_seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=phases, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(strategy)
    def fuzz(inp: inputs.FuzzInput) -> None:
        run(inp)

    fuzz()


CORPUS_LIMIT = 50000
PROGRESS_EVERY = 50000


def to_json(inp: inputs.FuzzInput) -> Dict[str, Any]:
    """An input as JSON (pieces in base64), for --replay."""
    return {"prelude": inp.prelude, "heartbeat": inp.heartbeat, "sgm": inp.sgm, "interval_ms": inp.interval_ms,
            "pieces": [base64.b64encode(p).decode() for p in inp.pieces],
            "chunk_sizes": list(inp.delivery.chunk_sizes), "use_buffer": list(inp.delivery.use_buffer),
            "clock_steps": list(inp.delivery.clock_steps)}


def from_json(obj: Dict[str, Any]) -> inputs.FuzzInput:
    """The input to_json wrote."""
    return inputs.FuzzInput(obj["prelude"], obj["heartbeat"], obj["sgm"], obj["interval_ms"],
                            [base64.b64decode(p) for p in obj["pieces"]],
                            inputs.Delivery(tuple(obj["chunk_sizes"]), tuple(obj["use_buffer"]),
                                            tuple(obj["clock_steps"])))


class Run:
    """One fuzz run over both targets; keeps the figures."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.harness = targets.Harness()
        self.plan = [name for name in ("host", "guest") if args.target in ("both", name)]
        self.per_target = args.examples // len(self.plan)
        self.done = {name: 0 for name in self.plan}
        self.corpus: Dict[str, List[bytes]] = {name: [] for name in self.plan}
        self.samples: List[Dict[str, float]] = []
        self.baseline: Optional[float] = None
        self.failure: Optional[str] = None
        self.started = time.monotonic()
        self._next_progress = PROGRESS_EVERY

    def runner(self, name: str) -> Callable[[inputs.FuzzInput], None]:
        return self.harness.host.run if name == "host" else self.harness.guest.run

    def total(self) -> int:
        return sum(self.done.values())

    def sample(self, force: bool = False) -> None:
        """Note the resident set size now and then; print progress."""
        total = self.total()
        if not force and total < self._next_progress:
            return
        self._next_progress = total + PROGRESS_EVERY
        elapsed = time.monotonic() - self.started
        rss = rss_mb()
        self.samples.append({"inputs": total, "seconds": round(elapsed, 1), "rss_mb": round(rss, 1)})
        if self.baseline is None and total >= self.args.examples // 10:
            self.baseline = rss
        print("%9d inputs  %6.0f /s  rss %6.1f MiB" % (total, total / max(elapsed, 1e-9), rss), flush=True)

    def hypothesis_phase(self, name: str) -> None:
        """Structure-aware inputs drawn by Hypothesis; their pieces fill the corpus."""
        run, corpus = self.runner(name), self.corpus[name]
        strategy = inputs.host_inputs if name == "host" else inputs.guest_inputs
        rng = random.Random(self.args.seed)

        def run_and_keep(inp: inputs.FuzzInput) -> None:
            run(inp)
            self.done[name] += 1
            for piece in inp.pieces:
                if len(corpus) < CORPUS_LIMIT:
                    corpus.append(piece)
                else:
                    corpus[rng.randrange(CORPUS_LIMIT)] = piece

        wanted = min(self.args.hypothesis_examples, self.per_target)
        batch_seed = self.args.seed
        while self.failure is None and self.done[name] < wanted:
            try:
                batch(run_and_keep, strategy, min(self.args.batch, wanted - self.done[name]), batch_seed)
            except Exception as exc:  # noqa: BLE001 - Hypothesis printed the shrunk input
                self.failure = "%s, hypothesis seed %d: %s" % (name, batch_seed, exc)
            batch_seed += 1
            self.sample()

    def mutation_phase(self, name: str) -> None:
        """The rest of the target's inputs, mutated from the corpus."""
        run, corpus = self.runner(name), self.corpus[name]
        if not corpus:
            return
        index = 0
        while self.failure is None and self.done[name] < self.per_target:
            inp = mutate.make_input(random.Random("%d:%s:%d" % (self.args.seed, name, index)), corpus)
            try:
                run(inp)
            except Exception as exc:  # noqa: BLE001 - every failure is reported the same way
                self.failure = "%s, mutated input %d: %s" % (name, index, exc)
                with open(self.args.failure_file, "w") as handle:
                    json.dump({"target": name, "input": to_json(inp), "error": str(exc)}, handle)
                print("failing input written to %s; replay: python -m tests.fuzz.run --replay %s"
                      % (self.args.failure_file, self.args.failure_file), flush=True)
            self.done[name] += 1
            index += 1
            self.sample()

    def summary(self) -> Dict[str, Any]:
        elapsed = time.monotonic() - self.started
        total = self.total()
        growth = rss_mb() - self.baseline if self.baseline is not None else 0.0
        if self.failure is None and growth > self.args.max_rss_growth_mb:
            self.failure = "resident set grew by %.1f MiB after warm-up (limit %.1f)" % (
                growth, self.args.max_rss_growth_mb)
        host = self.harness.host
        return {
            "inputs": total, "inputs_by_target": self.done, "hypothesis_inputs_per_target":
                min(self.args.hypothesis_examples, self.per_target),
            "seconds": round(elapsed, 1), "inputs_per_second": round(total / max(elapsed, 1e-9)),
            "seed": self.args.seed, "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_growth_after_warmup_mb": round(growth, 1), "max_rss_growth_mb": self.args.max_rss_growth_mb,
            "host_frames_written": host.frames_written, "guest_frames_written": self.harness.guest.frames_written,
            "monitor_events": dict(host.events), "relay": dict(host.relay.counters),
            "failure": self.failure, "rss_samples": self.samples,
        }


def main(argv: Optional[List[str]] = None) -> int:
    """Run the fuzzing; return 0 when nothing broke."""
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20000, help="inputs in all, half per target")
    parser.add_argument("--hypothesis-examples", type=int, default=3000,
                        help="inputs per target drawn by Hypothesis before mutation takes over")
    parser.add_argument("--batch", type=int, default=1000, help="inputs per Hypothesis run")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="seed of the run")
    parser.add_argument("--max-rss-growth-mb", type=float, default=64.0)
    parser.add_argument("--target", choices=("both", "host", "guest"), default="both")
    parser.add_argument("--json", metavar="PATH", help="write the figures here")
    parser.add_argument("--failure-file", metavar="PATH", default="fuzz-failure.json")
    parser.add_argument("--replay", metavar="PATH", help="run the input of a failure file and exit")
    args = parser.parse_args(argv)

    if args.replay:
        with open(args.replay) as handle:
            saved = json.load(handle)
        harness = targets.Harness()
        try:
            (harness.host if saved["target"] == "host" else harness.guest).run(from_json(saved["input"]))
        finally:
            harness.close()
        print("replay: no failure")
        return 0

    fuzz = Run(args)
    try:
        for name in fuzz.plan:
            fuzz.hypothesis_phase(name)
        for name in fuzz.plan:
            fuzz.mutation_phase(name)
        fuzz.sample(force=True)
    finally:
        fuzz.harness.close()
    summary = fuzz.summary()
    print("fuzz: %d inputs (%s) in %.0f s, %d inputs/s, peak RSS %.1f MiB, RSS growth after warm-up %.1f MiB: %s"
          % (summary["inputs"], ", ".join("%s %d" % item for item in fuzz.done.items()), summary["seconds"],
             summary["inputs_per_second"], summary["peak_rss_mb"], summary["rss_growth_after_warmup_mb"],
             summary["failure"] or "no failure"))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=1)
            handle.write("\n")
    return 1 if summary["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
