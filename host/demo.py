"""`make demo`: a short radiation campaign, then the same injections over the serial link.

It runs ``configs/campaigns/demo.yaml`` on the bit-exact model in worker processes: the
bare chip and the fully protected one, an int8 NN layer, upsets drawn from every site
class of each build's site map, each run classified against the golden run, and each
build flown through a year of the orbit (the mission soak). Then it starts each build
as a simulated chip on a pseudo-terminal and runs the first injections of every
stratum again over the serial protocol (service 148 arms the fault, service 8 runs the
job), and checks that every one of them ended as it did on the model. The report
(``reports/demo/report.html``, ``report.md``) opens with the silent-error rates per
device-year of both chips.

Then the AI workload under radiation (``configs/campaigns/digits.yaml``): the int8
digits classifier on the bare chip, SECDED alone and the fully protected chip, a
campaign whose SDCs are told apart by whether they changed a predicted class, and a year
flown with the weights resident: accuracy over mission time, in
``reports/demo/digits/report.html`` with its figure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console

from campaign.analysis import analyse
from campaign.mission import run_soaks
from campaign.report import headline, write_report
from campaign.runner import CampaignError, default_workers, run_campaign
from host.campaign.cli import CampaignProgress, soak_progress
from testbed.config import ConfigError
from testbed.config.campaign import load_campaign

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = REPO / "configs" / "campaigns" / "demo.yaml"
NETWORK = REPO / "configs" / "campaigns" / "digits.yaml"
#: Injections of each stratum run again over the link.
OVER_LINK = 3


def outcomes(run) -> dict[tuple, str]:
    return {(b, k, i): o[0] for (b, k), s in run.strata.items() for i, o in s.outcomes.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host.demo", description=__doc__)
    parser.add_argument("--campaign", type=Path, default=CAMPAIGN, help="the campaign file")
    parser.add_argument("--network", type=Path, default=NETWORK,
                        help="the campaign file of the AI workload under radiation")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("reports") / "demo")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--over-link", type=int, default=OVER_LINK, metavar="K",
                        help="injections of each stratum run again over the link")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        campaign = load_campaign(args.campaign)
        network = load_campaign(args.network)
    except ConfigError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    shutil.rmtree(args.out, ignore_errors=True)
    print(f"demo: {campaign.description}", file=sys.stderr)
    with CampaignProgress("model") as progress:
        model = run_campaign(campaign, args.out, workers=args.workers, progress=progress)
    soaks = run_soaks(campaign, args.out, soak_progress(Console(stderr=True)))
    a = analyse(model, soaks)
    if args.over_link:
        link_campaign = campaign.model_copy(update={"injections": args.over_link,
                                                    "precision": None})  # fmt: skip
        print(f"demo: the first {args.over_link} injections of each stratum again, on "
              "simulated chips over the serial link", file=sys.stderr)  # fmt: skip
        try:
            with CampaignProgress("link") as progress:
                link = run_campaign(link_campaign, args.out / "link", backend="link",
                                    workers=min(args.workers, len(campaign.build_list())),
                                    progress=progress)  # fmt: skip
        except CampaignError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        on_model, on_link = outcomes(model), outcomes(link)
        differ = sorted(k for k, o in on_link.items() if on_model.get(k) != o)
        a["link_check"] = {"runs": len(on_link), "differ": [list(k) for k in differ]}
        if differ:
            print(f"demo: {len(differ)} of {len(on_link)} runs over the link ended otherwise "
                  f"than on the model, first {differ[0]}", file=sys.stderr)  # fmt: skip
    paths = write_report(a, args.out)
    net_paths, net_lead = classifier(network, args.out / "digits", args.workers)
    print()
    for sentence in headline(a):
        print(sentence)
    check = a.get("link_check")
    print(f"\nreport: {paths['html']}  {paths['md']}  data: {paths['json']}\n")
    for sentence in net_lead:
        print(sentence)
    print(f"\nreport: {net_paths['html']}  {net_paths['md']}  data: {net_paths['json']}")
    return 1 if check and check["differ"] else 0


def classifier(campaign, out: Path, workers: int) -> tuple[dict[str, Path], list[str]]:
    """The AI workload's campaign and mission soaks: its report's paths and the sentences
    on the classifier (class-changing SDCs and accuracy over mission time)."""
    print(f"demo: {campaign.description}", file=sys.stderr)
    with CampaignProgress(campaign.name) as progress:
        run = run_campaign(campaign, out, workers=workers, progress=progress)
    soaks = run_soaks(campaign, out, soak_progress(Console(stderr=True)))
    a = analyse(run, soaks)
    paths = write_report(a, out)
    lead = headline(a)
    keep = [s for s in lead if "predicted class" in s or "test images with" in s]
    return paths, lead[:1] + keep


if __name__ == "__main__":
    sys.exit(main())
