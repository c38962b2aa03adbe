"""Running a campaign: chunks of injections on worker processes or a Dask cluster, every
run appended to ``DIR/runs.jsonl`` as it arrives, so an interrupted campaign loses nothing.

Each stratum gets a sample size (``injections`` per stratum, or Leveugle's n for the
margin asked for). With ``early_stop`` a stratum also ends at the first multiple of
``ROUND`` injections at which every outcome's Wilson interval is narrower than twice the
margin. That point depends only on the outcomes in index order, never on which worker
finished first, so 1 worker and 8 give the same result: runs past it that were already
under way are kept in ``runs.jsonl`` but are in no figure.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from campaign.outcome import CLASSES, Outcome
from campaign.plan import Plan, Stratum
from campaign.stats import narrow_enough, quantile, sample_size
from testbed.config.campaign import Campaign, Network
from testbed.sitemap_builds import Build

ROUND = 64
"""Injections of a chunk, and the steps at which the early-stop rule is checked."""
AHEAD = 2
"""Chunks of one stratum under way beyond its checked prefix (more would be wasted work
when the stratum stops early)."""
RUNS = "runs.jsonl"
CAMPAIGN = "campaign.json"


class CampaignError(Exception):
    """A campaign that cannot run as asked (one line for the user)."""


def fingerprint(campaign: Campaign) -> str:
    """A hash of everything that decides a campaign's injections and outcomes."""
    parts = [campaign.model_dump_json(), campaign.target_config.model_dump_json()]
    if campaign.environment_config is not None:
        parts.append(campaign.environment_config.model_dump_json())
    if isinstance(campaign.workload, Network):  # its weights and test images decide as well
        files = sorted(p for p in campaign.network_dir.iterdir() if p.is_file())
        parts += [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def planned(campaign: Campaign, stratum: Stratum) -> int:
    """How many injections a stratum gets at most: ``injections`` or Leveugle's n, never
    more than the stratum holds when it is sampled without replacement."""
    if campaign.injections is not None:
        n = campaign.injections
    else:
        p = campaign.precision
        assert p is not None
        n = sample_size(stratum.population, p.margin, p.confidence)
    return min(n, stratum.population)


@dataclass
class StratumRuns:
    """The runs of one stratum by index, and where its sample ends."""

    stratum: Stratum
    planned: int
    #: By index: outcome, detail, and a classifier's images whose class an SDC changed.
    outcomes: dict[int, tuple[str, str, int | None]] = field(default_factory=dict)
    dispatched: int = 0
    #: Where the sample ended (None while running) and which rule ended it.
    stop: int | None = None
    rule: str = ""

    def prefix_counts(self, end: int) -> Counter:
        return Counter(self.outcomes[i][0] for i in range(end))

    def settle(self, campaign: Campaign) -> None:
        """End the sample at the first checkpoint whose prefix satisfies a stopping rule."""
        if self.stop is not None:
            return
        p = campaign.precision
        early = p is not None and p.early_stop
        z = quantile(p.confidence) if p is not None else 1.96
        end = ROUND
        while end < self.planned:
            if not all(i in self.outcomes for i in range(end - ROUND, end)):
                return
            if early:
                counts = self.prefix_counts(end)
                injected = end - counts[Outcome.NOT_INJECTED.value]
                shares = {o.value: counts[o.value] for o in CLASSES}
                if narrow_enough(shares, injected, p.margin, z):
                    self.stop, self.rule = end, "margin"
                    return
            end += ROUND
        if all(i in self.outcomes for i in range(self.planned)):
            self.stop = self.planned
            if self.planned == self.stratum.population:
                self.rule = "population"
            elif campaign.injections is not None:
                self.rule = "injections"
            else:
                self.rule = "sample size"

    def next_chunk(self) -> tuple[int, int] | None:
        """The next range of indices to run, if the stratum may still need it."""
        if self.stop is not None or self.dispatched >= self.planned:
            return None
        checked = sum(1 for i in range(self.dispatched) if i in self.outcomes)
        if self.dispatched - checked >= AHEAD * ROUND:
            return None
        start = self.dispatched
        while start < self.planned and start in self.outcomes:
            start += 1  # resumed: already done
        stop = start
        while stop < min(self.planned, start + ROUND) and stop not in self.outcomes:
            stop += 1
        self.dispatched = stop
        return (start, stop) if stop > start else self.next_chunk()


# --- workers ---------------------------------------------------------------------------

_BACKENDS: dict[tuple[str, str], object] = {}


def backend_for(campaign: Campaign, build: Build, backend: str) -> object:
    """The backend of one build in this process (made once, then reused)."""
    key = (fingerprint(campaign) + backend, build.name)
    found = _BACKENDS.get(key)
    if found is None:
        plan = Plan(campaign, build)
        if backend == "model":
            from campaign.model_backend import ModelBackend

            found = ModelBackend(plan)
        elif backend == "rtl":
            from campaign.rtl_backend import RtlBackend

            found = RtlBackend(plan, campaign.simulator)
        else:  # the ground side's backend: a target over the link
            from host.campaign.link_backend import LinkBackend

            found = LinkBackend(plan)
        _BACKENDS[key] = found
    return found


def run_chunk(
    campaign: Campaign, build: Build, backend: str, stratum: str, start: int, stop: int
) -> list[dict]:
    """Run injections ``start`` .. ``stop`` - 1 of a stratum; one record per run."""
    chip = backend_for(campaign, build, backend)
    plan: Plan = chip.plan  # type: ignore[attr-defined]
    s = plan.stratum(stratum)
    out = []
    for index in range(start, stop):
        inj = plan.injection(s, index)
        verdict = chip.run(inj)  # type: ignore[attr-defined]
        record = {**inj.to_json(), "outcome": verdict.outcome.value, "detail": verdict.detail}
        if verdict.changed is not None:
            record["changed"] = verdict.changed
        out.append(record)
    return out


def close_backends() -> None:
    """Stop the chips this process started."""
    for chip in _BACKENDS.values():
        close = getattr(chip, "close", None)
        if close is not None:
            close()
    _BACKENDS.clear()


# --- the campaign ----------------------------------------------------------------------


@dataclass
class CampaignRun:
    """Everything run so far, by build and stratum."""

    campaign: Campaign
    backend: str
    builds: list[Build]
    strata: dict[tuple[str, str], StratumRuns]

    def counts(self) -> Counter:
        """Outcomes of every run so far, whether or not in a figure."""
        return Counter(o[0] for s in self.strata.values() for o in s.outcomes.values())

    def planned_total(self) -> int:
        return sum(s.stop if s.stop is not None else s.planned for s in self.strata.values())

    def done_total(self) -> int:
        return sum(min(len(s.outcomes), s.stop or s.planned) for s in self.strata.values())


def _outcome(record: dict) -> tuple[str, str, int | None]:
    return record["outcome"], record["detail"], record.get("changed")


def _read_runs(path: Path) -> Iterator[dict]:
    """The records of ``runs.jsonl``; a last line cut short by a kill is dropped."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    good = []
    for n, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break
            raise CampaignError(f"{path}:{n + 1}: not a run record") from None
        good.append(line)
        yield record
    if len(good) != len(lines):
        path.write_text("".join(good), encoding="utf-8")


def prepare(campaign: Campaign, out: Path, backend: str, resume: bool) -> CampaignRun:
    """Check ``out``, write its ``campaign.json``, and load the runs it already holds."""
    if backend == "link" and isinstance(campaign.workload, Network):
        raise CampaignError(
            f"{campaign.workload.describe()}: a network runs as several chip jobs, and a "
            "campaign over the link runs one: use the model or RTL backend"
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    meta_path, runs_path = out / CAMPAIGN, out / RUNS
    meta = {"name": campaign.name, "file": campaign.path, "backend": backend,
            "port": campaign.port, "baud": campaign.baud, "fingerprint": fingerprint(campaign),
            "campaign": json.loads(campaign.model_dump_json())}  # fmt: skip
    if runs_path.exists() and runs_path.stat().st_size:
        if not resume:
            raise CampaignError(
                f"{out} already holds runs of a campaign: pass --resume to go on with them, "
                "or another --out"
            )
        old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if old.get("fingerprint") != meta["fingerprint"] or old.get("backend") != backend:
            raise CampaignError(
                f"{out} holds runs of another campaign ({old.get('file', '?')}, backend "
                f"{old.get('backend', '?')}): --resume continues the same campaign only"
            )
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    builds = campaign.build_list()
    if not builds:
        raise CampaignError(f"{campaign.path}: a board target needs 'builds' naming its build")
    strata: dict[tuple[str, str], StratumRuns] = {}
    for build in builds:
        for s in Plan(campaign, build).strata:
            strata[(build.name, s.key)] = StratumRuns(s, planned(campaign, s))
    for record in _read_runs(runs_path):
        runs = strata.get((record["build"], record["stratum"]))
        if runs is not None:
            runs.outcomes[record["index"]] = _outcome(record)
    for runs in strata.values():
        runs.settle(campaign)
    return CampaignRun(campaign, backend, builds, strata)


Progress = Callable[[CampaignRun], None]


def run_campaign(
    campaign: Campaign,
    out: Path,
    *,
    backend: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> CampaignRun:
    """Run (or go on with) a campaign into ``out``; returns every run by stratum."""
    backend = backend or campaign.backend
    if workers < 1:
        raise CampaignError(f"--workers must be at least 1, got {workers}")
    state = prepare(campaign, out, backend, resume)
    builds = {b.name: b for b in state.builds}
    with open(out / RUNS, "a", encoding="utf-8") as log:

        def take(records: list[dict]) -> None:
            for r in records:
                log.write(json.dumps(r, separators=(",", ":")) + "\n")
                runs = state.strata[(r["build"], r["stratum"])]
                runs.outcomes[r["index"]] = _outcome(r)
            log.flush()
            if records:
                state.strata[(records[0]["build"], records[0]["stratum"])].settle(campaign)
            if progress is not None:
                progress(state)

        def chunks() -> Iterator[tuple]:
            while True:
                offered = False
                for (build, key), runs in state.strata.items():
                    chunk = runs.next_chunk()
                    if chunk is not None:
                        offered = True
                        yield (campaign, builds[build], backend, key, *chunk)
                if not offered:
                    return

        if progress is not None:
            progress(state)
        if scheduler is not None:
            _on_dask(scheduler, chunks, take)
        elif workers == 1:
            _in_process(chunks, take)
        else:
            _on_processes(workers, chunks, take)
    return state


def _in_process(chunks: Callable[[], Iterator[tuple]], take: Callable) -> None:
    try:
        while True:
            batch = list(chunks())
            if not batch:
                return
            for args in batch:
                take(run_chunk(*args))
    finally:
        close_backends()


def _on_processes(workers: int, chunks: Callable[[], Iterator[tuple]], take: Callable) -> None:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        running: set = set()
        while True:
            for args in chunks():
                running.add(pool.submit(run_chunk, *args))
                if len(running) >= 2 * workers:
                    break
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                take(future.result())


def _on_dask(address: str, chunks: Callable[[], Iterator[tuple]], take: Callable) -> None:
    from dask.distributed import Client, as_completed

    try:
        client = Client(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise CampaignError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        width = max(1, sum(client.nthreads().values()))
        pending = as_completed()
        count = 0
        for args in chunks():
            pending.add(client.submit(run_chunk, *args, pure=False))
            count += 1
            if count >= 2 * width:
                break
        for future in pending:
            take(future.result())
            for args in chunks():
                pending.add(client.submit(run_chunk, *args, pure=False))
                if pending.count() >= 2 * width:
                    break


def default_workers() -> int:
    """Worker processes by default: the cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)))
