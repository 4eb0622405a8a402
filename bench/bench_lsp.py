"""`ssnc lsp` response times: from `didChange` to the published diagnostics, and hover and
completion, on FractalNet, HM-RNN and U-Net, each as a ratio to one in-process `check` of the
same text measured in the same run (alternating; no debounce delay in the server), with the
absolute medians beside them, and the in-process time split into parsing and elaboration.
Then the fuzz harness's 1,500 specs (100 with --quick) sent as edits, one after another: how
long each waits for its answer (the issue's bound: 2 s), against an in-process check of the
slowest.

    python bench/bench_lsp.py [--reps 7] [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, client_capabilities

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, arguments, machine, write_section

import ssnc
from ssnc.compiler.guard import guarded
from ssnc.grammar.parser import parse
from ssnc.lsp import Analysis, uri_of, utf16

SPECS = {"fractalnet": "stage(widths[i]", "hmrnn_charlm": "hmrnn(", "unet": "unet("}
QUICK = {"fractalnet_digits": "stage("}


def check(text: str, path: Path) -> tuple[float, float]:
    """One in-process `check` (the text loaded, every model elaborated), and the time of
    parsing the text alone (measured apart)."""
    start = time.perf_counter()
    parse(text + "\n# parsed alone\n", str(path))  # another text: `loads` parses its own
    parsed = time.perf_counter() - start
    start = time.perf_counter()
    program = ssnc.loads(text, str(path), root=path.parent)
    for name in program.models:
        program.model(name)
    return time.perf_counter() - start, parsed


def position(text: str, needle: str) -> t.Position:
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            return t.Position(line=number, character=utf16(line, line.index(needle) + 1))
    raise ValueError(needle)


async def measure(path: Path, needle: str, reps: int) -> dict[str, float]:
    """Medians over ``reps`` alternating rounds: the in-process check, its parse, the
    server's didChange-to-diagnostics, hover and completion."""
    text = path.read_text()
    client = await ClientServerConfig(
        server_command=[sys.executable, "-m", "ssnc.cli", "lsp"]).start()
    await client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("visual-studio-code")))
    uri = uri_of(path)
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id="ssn", version=1, text=text)))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    times: dict[str, list[float]] = {k: [] for k in ("check", "parse", "change", "hover",
                                                       "completion")}
    where = position(text, needle)
    for rep in range(reps):
        edited = text + f"\n# edit {rep}\n"  # a new text each time: nothing cached
        total, parsed = check(edited, path)
        times["check"].append(total)
        times["parse"].append(parsed)
        start = time.perf_counter()
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=rep + 2),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=edited)]))
        await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        times["change"].append(time.perf_counter() - start)
        doc = t.TextDocumentIdentifier(uri=uri)
        start = time.perf_counter()
        await client.text_document_hover_async(t.HoverParams(text_document=doc, position=where))
        times["hover"].append(time.perf_counter() - start)
        start = time.perf_counter()
        await client.text_document_completion_async(t.CompletionParams(
            text_document=doc, position=where))
        times["completion"].append(time.perf_counter() - start)
    await client.shutdown_session()
    return {k: statistics.median(v) for k, v in times.items()}


async def measure_fuzz(count: int) -> tuple[list[float], float, float, int, float]:
    """Each fuzzed spec sent as a `didChange`, timed until an outline asked right after it
    is answered; returns the times and, for the slowest spec, an in-process check, the same
    work in-process (check, then the outline), and its size."""
    sys.path.insert(0, str(ROOT))
    from tests.fuzz.generate import cases

    texts = [text for _, text in cases(11, count)]
    client = await ClientServerConfig(
        server_command=[sys.executable, "-m", "ssnc.cli", "lsp"]).start()
    await client.initialize_session(t.InitializeParams(
        capabilities=client_capabilities("neovim")))
    path = Path("/tmp/ssnc_bench_fuzz.ssn")
    uri = uri_of(path)
    doc = t.TextDocumentIdentifier(uri=uri)
    warm = (ROOT / "specs" / "fractalnet.ssn").read_text()  # the server's first check warms it
    client.text_document_did_open(t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
        uri=uri, language_id="ssn", version=1, text=warm)))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    times: list[float] = []
    for version, text in enumerate(texts, 2):
        start = time.perf_counter()
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=text)]))
        await client.text_document_document_symbol_async(t.DocumentSymbolParams(
            text_document=doc))  # an outline: it needs the new text's items
        times.append(time.perf_counter() - start)
    await client.shutdown_session()
    slowest = texts[times.index(max(times))]
    start = time.perf_counter()
    try:
        program = ssnc.loads(slowest, str(path), root=path.parent)
        for name in program.models:
            program.model(name)
    except ssnc.SsnError:
        pass  # most fuzzed specs are wrong: the baseline is the time to the diagnostic
    alone = time.perf_counter() - start
    start = time.perf_counter()
    analysis = Analysis()
    analysis.check(uri, slowest + "\n")  # one line more: parsed anew, not the kept parse
    analysis.symbols(uri)
    same = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.suppress(ssnc.SsnError):  # another text: not the kept parse
        guarded(lambda: parse(slowest + "\n# parsed alone\n", str(path)))
    return times, alone, same, len(slowest), time.perf_counter() - start


def fuzz_lines(count: int) -> list[str]:
    """The fuzz section's table and a sentence on the slowest edit."""
    times, alone, same, size, parsing = asyncio.run(measure_fuzz(count))
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    over = sum(x > 2.0 for x in times)
    return [
        "", f"{count:,} fuzzed specs (the fuzz harness's mix, seed 11) sent as `didChange` "
        "one after another to a server that has checked one spec, each timed until an "
        "outline (`documentSymbol`) asked right after it is answered:",
        "", "| edits | median (ms) | 99th percentile (ms) | slowest (ms) | over 2 s |",
        "|---:|---:|---:|---:|---:|",
        f"| {count:,} | {statistics.median(times) * 1e3:.1f} | {p99 * 1e3:.0f} | "
        f"{max(times) * 1e3:.0f} | {over} |",
        "", f"The slowest edit is a {size / 1024:.0f} KB spec. In-process in the same run, "
        f"`check` alone takes {alone * 1e3:.0f} ms and the same work as the server's (check, "
        f"then the outline) {same * 1e3:.0f} ms; the server's ratio to that: "
        f"{max(times) / same:.2f}. Parsing it takes {parsing * 1e3:.0f} ms of that."]


def main() -> None:
    args = arguments(__doc__, reps=7)
    specs = QUICK if args.quick else SPECS
    section = "lsp-quick" if args.quick else "lsp"
    lines = [
        "## Language server response times" + (" (quick)" if args.quick else ""),
        "",
        f"`python bench/bench_lsp.py` on {machine()}. Medians of {args.reps} rounds, each an "
        "in-process check (parse and elaborate every model; the baseline) then, on the "
        "running `ssnc lsp`, a `didChange` of the same text until its diagnostics arrive, a "
        "hover and a completion. Ratios are to the in-process check (goal for didChange: "
        "at most 1.2).",
        "",
        "| spec | check (ms) | of which parsing (ms) | didChange → diagnostics (ms) | ratio "
        "| hover (ms) | ratio | completion (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    shares: list[str] = []
    for stem, needle in specs.items():
        m = asyncio.run(measure(ROOT / "specs" / f"{stem}.ssn", needle, args.reps))
        shares.append(f"{stem} {100 * m['parse'] / m['check']:.0f} %")
        row = (f"| {stem} | {m['check'] * 1e3:.0f} | {m['parse'] * 1e3:.0f} | "
               f"{m['change'] * 1e3:.0f} | **{m['change'] / m['check']:.2f}** | "
               f"{m['hover'] * 1e3:.1f} | {m['hover'] / m['check']:.3f} | "
               f"{m['completion'] * 1e3:.1f} | {m['completion'] / m['check']:.3f} |")
        lines.append(row)
        print(row, flush=True)
        write_section(section, "\n".join(lines), args.out)
    lines += ["", "A `didChange` costs the server one check (it compiles the text and "
              "publishes its diagnostics) plus the messages. Parsing's share of a check: "
              + ", ".join(shares) + "; the rest is elaboration (and shape inference), which "
              "dominates. Hover and completion answer from the last compile: they re-read "
              "the document's items, and hover sums `ssnc info`'s rows for the rule under "
              "the cursor."]
    write_section(section, "\n".join(lines), args.out)
    lines += fuzz_lines(100 if args.quick else 1500)
    write_section(section, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
