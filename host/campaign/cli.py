"""``hil campaign run FILE`` and ``hil campaign report DIR``.

The campaign modules are imported by the commands that use them, not with the parser:
every other ``hil`` command starts without loading them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from host.arguments import MAX_BAUD, integer
from host.progress import LOG_EVERY_S, Progress
from testbed.config.campaign import BACKENDS, SIMULATORS, load_campaign

if TYPE_CHECKING:
    from rich.console import Console

    from campaign.runner import CampaignRun


class CampaignProgress(Progress):
    """The campaign's runs on the progress bar of every ``hil`` operation, with a live
    count per outcome class after the ETA. When the campaign's target is a port that
    ``hil serve`` owns, its progress is shown on the server's web view too."""

    def __init__(self, label: str, port: str | None = None) -> None:
        super().__init__(label, "runs")
        self._name = label
        self._viewer = _viewer(port)
        self._shown = 0.0

    def __call__(self, run: CampaignRun) -> None:  # type: ignore[override]
        from campaign.outcome import CLASSES, Outcome

        counts = run.counts()
        self.note("  ".join(f"{o.value} {counts[o.value]}"
                            for o in (*CLASSES, Outcome.NOT_INJECTED)))  # fmt: skip
        done, total = run.done_total(), run.planned_total()
        super().__call__(done, total)
        now = time.monotonic()
        if self._viewer is not None and (now - self._shown >= VIEW_EVERY_S or done >= total):
            self._shown = now
            self._viewer.publish({
                "kind": "campaign", "name": self._name, "done": done, "total": total,
                "counts": {o.value: counts[o.value] for o in (*CLASSES, Outcome.NOT_INJECTED)},
            })  # fmt: skip

    def __exit__(self, *exc) -> None:  # type: ignore[override]
        super().__exit__(*exc)
        if self._viewer is not None:
            self._viewer.close()


VIEW_EVERY_S = 0.5
"""How often a campaign's progress goes to ``hil serve``'s web view."""


def _viewer(port: str | None):
    """A connection to the ``hil serve`` of ``port`` that shows progress, or None."""
    from host.errors import LinkError
    from host.served import SharedLink, find_server

    record = find_server(port) if port else None
    if record is None:
        return None
    try:
        return SharedLink(record, client="hil campaign").open(start=False)
    except LinkError:
        return None


def cmd_run(args: argparse.Namespace) -> int:
    """Run a campaign file into its directory, then write its report."""
    from rich.console import Console

    from campaign.analysis import analyse
    from campaign.mission import run_soaks
    from campaign.report import write_report
    from campaign.runner import CampaignError, default_workers, run_campaign

    campaign = load_campaign(args.file)
    if args.simulator is not None:
        campaign = campaign.model_copy(update={"simulator": args.simulator})
    out = args.out or Path("reports") / campaign.name
    if args.workers is not None and args.scheduler is not None:
        raise CampaignError("give --workers or --scheduler, not both")
    workers = args.workers or default_workers()
    backend = args.backend or campaign.backend
    if args.port is not None:
        campaign, backend = on_port(campaign, args.port, args.baud), "link"
        if args.scheduler is not None or (args.workers or 1) > 1:
            raise CampaignError("--port: a board takes one worker (no --workers, --scheduler)")
        workers = 1
    where = f"Dask scheduler {args.scheduler}" if args.scheduler else f"{workers} worker(s)"
    print(f"campaign {campaign.name}: {campaign.workload.describe()} on "
          f"{', '.join(b.name for b in campaign.build_list())}, backend {backend}, {where}; "
          f"runs in {out / 'runs.jsonl'}", file=sys.stderr)  # fmt: skip
    with CampaignProgress(campaign.name, board_port(campaign)) as progress:
        run = run_campaign(campaign, out, backend=backend, workers=workers,
                           scheduler=args.scheduler, resume=args.resume,
                           progress=progress)  # fmt: skip
    soaks = run_soaks(campaign, out, soak_progress(Console(stderr=True)))
    paths = write_report(analyse(run, soaks), out)
    print(f"report: {paths['html']}  {paths['md']}  data: {paths['json']}")
    return 0


def soak_progress(console: Console):
    """One line per soak as it starts and ends; the simulated days as they pass."""
    state: dict = {"label": None, "logged": 0.0, "ended": False}

    def tick(label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if label != state["label"]:
            state.update(label=label, ended=False)
            console.print(f"{label}: flying {total / 86_400:g} simulated days")
        if state["ended"]:
            return
        state["ended"] = done >= total
        if done >= total or now - state["logged"] >= LOG_EVERY_S:
            state["logged"] = now
            console.print(f"{label}: day {done / 86_400:.1f} of {total / 86_400:g}")

    return tick


def board_port(campaign) -> str | None:
    """The port of the campaign's board, None when it runs on simulated chips or models."""
    from testbed.config.target import BoardTarget

    target = campaign.target_config
    return target.port if isinstance(target, BoardTarget) else None


def on_port(campaign, port: str, baud: int | None):
    """The campaign run on the board at ``port`` (over the link): the build it names must
    be one, the board's."""
    from campaign.runner import CampaignError
    from testbed.config.target import PORT_FORMAT, BoardTarget

    builds = campaign.build_list()
    if len(builds) != 1:
        raise CampaignError(f"--port: the campaign names {len(builds)} builds; a board is "
                            "one: give a campaign whose 'builds' is the board's")  # fmt: skip
    try:
        board = BoardTarget.model_validate(
            {"kind": "board", "port": port, **({"baud": baud} if baud else {})}
        )
    except ValueError:
        raise CampaignError(f"--port {port!r}: must be {PORT_FORMAT}"
                            + (f"; --baud {baud}: a positive integer" if baud else "")) from None
    return campaign.on_board(board, port, baud)


def campaign_of(directory: Path):
    """The campaign a directory's runs belong to (on the board they ran on, if any), and
    its ``campaign.json``."""
    from campaign.runner import CAMPAIGN, CampaignError

    meta_path = directory / CAMPAIGN
    if not meta_path.exists():
        raise CampaignError(f"{directory} holds no campaign ({CAMPAIGN} is missing)")
    meta = json.loads(meta_path.read_text())
    campaign = load_campaign(meta["file"])
    if meta.get("port"):
        campaign = on_port(campaign, meta["port"], meta.get("baud"))
    return campaign, meta


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of the runs a campaign directory holds (finished or not)."""
    from campaign.analysis import analyse
    from campaign.mission import run_soaks
    from campaign.report import write_report
    from campaign.runner import prepare

    campaign, meta = campaign_of(args.dir)
    run = prepare(campaign, args.dir, meta["backend"], resume=True)
    soaks = run_soaks(campaign, args.dir, fly=False)
    paths = write_report(analyse(run, soaks), args.dir)
    print(f"report: {paths['html']}  {paths['md']}  data: {paths['json']}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Run one injection of a campaign directory again and say how it ended."""
    from campaign.runner import CampaignError, backend_for, close_backends
    from testbed.sitemap_builds import Build, BuildError

    campaign, meta = campaign_of(args.dir)
    try:
        build_name, cls, kind, index = args.which.rsplit("/", 3)
        build, index = Build.from_name(build_name), int(index)
    except (ValueError, BuildError):
        raise CampaignError(f"RUN {args.which!r}: give BUILD/CLASS/KIND/INDEX as runs.jsonl "
                            "names them, e.g. n4-bw1024-il1-ecc-scrub-tmr/accumulator/sbu/17"
                            ) from None  # fmt: skip
    if build.name not in {b.name for b in campaign.build_list()}:
        raise CampaignError(f"RUN: the campaign has no build {build.name}")
    backend = args.backend or meta["backend"]
    try:
        chip = backend_for(campaign, build, backend)
        plan = chip.plan  # type: ignore[attr-defined]
        try:
            stratum = plan.stratum(f"{cls}/{kind}")
        except KeyError as exc:
            raise CampaignError(f"RUN: {exc.args[0]}") from None
        if not 0 <= index < stratum.population:
            raise CampaignError(f"RUN: index {index} outside 0..{stratum.population - 1}")
        inj = plan.injection(stratum, index)
        verdict = chip.run(inj)  # type: ignore[attr-defined]
    finally:
        close_backends()
    print(json.dumps(inj.to_json()))
    print(f"{verdict.outcome.value}: {verdict.detail}")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """The campaign's injections on the model and over the link; 1 if any ended otherwise."""
    from campaign.runner import default_workers
    from host.campaign.crosscheck import crosscheck

    campaign = load_campaign(args.file)
    if args.simulator is not None:
        campaign = campaign.model_copy(update={"simulator": args.simulator})
    chip = "link" if args.over_link or args.port is not None else "rtl"
    if args.port is not None:
        campaign = on_port(campaign, args.port, args.baud)
    out = args.out or Path("reports") / f"{campaign.name}-crosscheck"
    workers = args.workers or default_workers()
    where = "over the link" if chip == "link" else "on the RTL"
    print(f"crosscheck {campaign.name}: {campaign.workload.describe()} on "
          f"{', '.join(b.name for b in campaign.build_list())}, on the model, then {where}; "
          f"runs in {out}", file=sys.stderr)  # fmt: skip

    def progress(label: str) -> CampaignProgress:
        return CampaignProgress(f"{campaign.name} ({label})")

    check = crosscheck(campaign, out, chip=chip, injections=args.injections, workers=workers,
                       progress=progress)  # fmt: skip
    for line in check.summary():
        print(line)
    print(f"data: {out / 'crosscheck.json'}")
    return 1 if check.differ else 0


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number of workers, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1 worker, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``hil campaign`` on the ``hil`` parser's subcommands."""
    c = sub.add_parser("campaign", help="radiation campaigns: run one, or report on one")
    csub = c.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    r = csub.add_parser("run", help="run a campaign file (configs/campaigns) and report it")
    r.add_argument("file", type=Path, help="a campaign file")
    r.add_argument("--out", type=Path, help="its directory (default reports/NAME)")
    r.add_argument("--workers", type=_workers, help="worker processes (default: the cores)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster, e.g. tcp://10.0.0.5:8786")  # fmt: skip
    r.add_argument("--backend", choices=BACKENDS,
                   help="model: the model in the workers; rtl: the chip's RTL in a simulation "
                   "per worker; link: the target file's chip over the serial link (default: "
                   "the file's)")  # fmt: skip
    r.add_argument("--simulator", choices=SIMULATORS,
                   help="the rtl backend's simulator (default: the file's, or icarus)")
    r.add_argument("--port", metavar="PORT",
                   help="run over the link on the board (or `hil sim` chip) at this serial "
                   "port, TEST mode; the campaign must name its one build")  # fmt: skip
    r.add_argument("--baud", type=integer(1, MAX_BAUD),
                   help="the board's baud rate (default the link's)")
    r.add_argument("--resume", action="store_true",
                   help="go on with the runs DIR holds (the same campaign only)")  # fmt: skip
    r.set_defaults(run=cmd_run)
    p = csub.add_parser("report", help="write report.json, report.md and report.html of DIR")
    p.add_argument("dir", type=Path, help="a campaign's directory")
    p.set_defaults(run=cmd_report)
    x = csub.add_parser(
        "crosscheck", help="the same injections on the model and on the RTL (or over the "
        "link), compared one by one (exit 1 if any differs)",
    )  # fmt: skip
    x.add_argument("file", type=Path, help="a campaign file (its target is the chip checked)")
    x.add_argument("--injections", type=_workers, metavar="N",
                   help="injections per stratum (default: the file's)")  # fmt: skip
    x.add_argument("--out", type=Path, help="its directory (default reports/NAME-crosscheck)")
    x.add_argument("--workers", type=_workers, help="worker processes (default: the cores)")
    x.add_argument("--simulator", choices=SIMULATORS,
                   help="the RTL's simulator (default: the file's, else icarus)")  # fmt: skip
    x.add_argument("--over-link", action="store_true",
                   help="run the second time over the serial link on the target file's chip "
                   "(the flight software too) instead of on the RTL directly")  # fmt: skip
    x.add_argument("--port", metavar="PORT", help="check the board at this serial port instead")
    x.add_argument("--baud", type=integer(1, MAX_BAUD),
                   help="the board's baud rate (default the link's)")
    x.set_defaults(run=cmd_crosscheck)
    p = csub.add_parser("replay", help="run one injection of DIR again, from its record")
    p.add_argument("dir", type=Path, help="a campaign's directory")
    p.add_argument("which", metavar="RUN", help="BUILD/CLASS/KIND/INDEX, as in runs.jsonl")
    p.add_argument("--backend", choices=BACKENDS, help="default: the campaign's")
    p.set_defaults(run=cmd_replay)
