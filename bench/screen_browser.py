"""Click -> new trial on screen in real Chromium: P live pages (separate browser contexts)
in one group session, S steps, driven by the experimenter's socket.

    .venv/bin/python bench/screen_browser.py [--pages 8] [--steps 10] [--embedded]

Daphne with PostgreSQL (``ensemble_bench``) and a private Redis (``--embedded``: SQLite
and the in-process layer), static files collected into the bench's var directory,
Debian's Chromium through Playwright (tests/e2e/conftest.py's flags). Each page opens the
run URL once (the live page, waiting for the start), the experimenter's socket starts
the session (step 0, not measured), and each page answers each step through its form (the first number
or text input gets 4, then its submit button); ``SETTLE`` after the last answer came
back the experimenter advances (t0, machine clock). Each page keeps its own record in
``window.ensembleLive.log`` (live-protocol.md): per step, with ``performance.now()``,
the state's and the content's arrival, the content ready in the DOM (``ready_at``), the
animation frame that revealed it (``reveal_at``), and the onset it reported on the
server clock by its clock offset (``onset_ms``). From those:

- click -> ready and click -> revealed (``performance.timeOrigin + t`` minus t0: one
  machine, one clock), p50/p95/p99/max over pages and steps;
- onset spread per step (last minus first, ms): as reported on the server clock, and as
  revealed on the machine's clock;
- ``framenavigated`` events of each page's main frame after its first load (0 = no page
  left the live document during the group part);
- answers stored / lost / doubled in the database; screenshots of the pages in the middle
  of the session (``bench/results/live-screens/``).

Prints one JSON object. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, fanout  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]  # fmt: skip  (tests/e2e/conftest.py)
SHOTS = common.ROOT / "bench" / "results" / "live-screens"
SETTLE, PAUSE, TIMEOUT_MS = 0.5, 0.3, 20_000
# How often the driver looks whether a page has revealed the step. Playwright's default
# polls in every animation frame of every page, the very frames being measured, and
# answers over the DevTools socket at once: with it, 0-4 steps of 10 had pages revealing
# in different frames (a renderer without frames for 30-40 ms); looking every 100 ms, 0-1
# (six runs of each on one machine; session 16 in docs/performance.md).
POLL_MS = 100
SHOWN = "s => (window.ensembleLive && window.ensembleLive.log || []).some(e => e.step === s && e.reveal_at != null)"
ONLINE = "() => !!(window.ensembleLive && window.ensembleLive.socket && window.ensembleLive.socket.state)"
READ = "() => ({origin: performance.timeOrigin, log: (window.ensembleLive || {}).log || []})"


def collect_static(env: dict) -> None:
    subprocess.run([common.PY, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=common.ROOT, env=env,
                   check=True, timeout=300)  # fmt: skip


async def open_pages(browser, server, group: dict, n: int) -> tuple[list, list[int]]:
    """``n`` pages in their own contexts, each on its run's live page; navigations of each
    main frame counted from then on."""
    pages, navigations = [], [0] * n
    for i in range(n):
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_cookies([{"name": group["run_cookie"], "value": group["run_tokens"][i], "url": server.url}])
        page = await context.new_page()
        await page.goto(f"{server.url}/run/{group['experiment']}/")
        await page.wait_for_function(ONLINE)

        def count(frame, i=i, page=page):
            if frame == page.main_frame:
                navigations[i] += 1

        page.on("framenavigated", count)
        pages.append(page)
    return pages, navigations


async def answer(page) -> None:
    """Fill the shown step's form as a participant would and submit it; wait for the reply."""
    form = page.locator("[data-lockstep] form:visible").first
    field = form.locator("[data-questions] input:visible").first
    await field.fill("4")
    async with page.expect_response(lambda r: r.request.method == "POST", timeout=TIMEOUT_MS) as reply:
        await form.locator("[type=submit]:visible").first.click()
    response = await reply.value
    if response.status != 200:
        raise RuntimeError(f"answer: HTTP {response.status} {await response.text()}")


async def drive(pages: list, boss, steps: int, shots: Path) -> dict[int, float]:
    """Each step: every page answers, then the advance (t0, ms); returns t0 per new step."""
    t0: dict[int, float] = {}
    for k in range(steps):
        await asyncio.gather(*(answer(p) for p in pages))
        await asyncio.sleep(SETTLE)
        t0[k + 1] = time.time() * 1000
        await boss.send(json.dumps({"type": "advance", "step": k}))
        shown = (p.wait_for_function(SHOWN, arg=k + 1, timeout=TIMEOUT_MS, polling=POLL_MS) for p in pages)
        await asyncio.gather(*shown)
        if k + 1 == steps // 2:
            await screenshots(pages, k + 1, shots)
        await asyncio.sleep(PAUSE)
    return t0


async def screenshots(pages: list, step: int, shots: Path) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(pages[:2]):
        await page.screenshot(path=str(shots / f"live-page-{i + 1}-step-{step}.png"))


def figures(logs: list[dict], t0: dict[int, float]) -> dict:
    """From each page's ``window.ensembleLive.log`` (live-protocol.md: ``*_at`` are
    ``performance.now()`` values, ``onset_ms`` the server clock) and t0 per step (ms)."""
    frame, content, ready, revealed, reported, achieved, late = [], [], [], [], [], [], 0
    framed, out = [], []  # the reveal frame's time spread per step; click -> the frame after it
    for k, sent in t0.items():
        entries = [(log["origin"], e) for log in logs for e in log["log"] if e.get("step") == k]
        frame += [(o + e["state_at"] - sent) / 1000 for o, e in entries if e.get("state_at") is not None]
        content += [(o + e["content_at"] - sent) / 1000 for o, e in entries if e.get("content_at") is not None]
        ready += [(o + e["ready_at"] - sent) / 1000 for o, e in entries if e.get("ready_at") is not None]
        shown = [o + e["reveal_at"] for o, e in entries if e.get("reveal_at") is not None]
        revealed += [(t - sent) / 1000 for t in shown]
        onsets = [e["onset_ms"] for _, e in entries if e.get("onset_ms") is not None]
        late += sum(1 for _, e in entries if (e.get("late_ms") or 0) > 0)
        if len(onsets) > 1:
            reported.append((max(onsets) - min(onsets)) / 1000)
        if len(shown) > 1:
            achieved.append((max(shown) - min(shown)) / 1000)
        frames = [o + e["frame_at"] for o, e in entries if e.get("frame_at") is not None]
        if len(frames) > 1:
            framed.append((max(frames) - min(frames)) / 1000)
        out += [(o + e["next_frame_at"] - sent) / 1000 for o, e in entries if e.get("next_frame_at") is not None]
    offsets = [
        abs(e["offset_ms"]) / 1000
        for log in logs
        for e in log["log"]
        if e.get("step") in t0 and e.get("offset_ms") is not None
    ]  # fmt: skip  (one machine: the estimate is its error)
    return {"frame_ms": common.summary_ms(frame), "content_ms": common.summary_ms(content),
            "offset_error_ms": common.summary_ms(offsets),
            "ready_ms": common.summary_ms(ready), "revealed_ms": common.summary_ms(revealed),
            "onset_spread_ms": common.summary_ms(reported), "revealed_spread_ms": common.summary_ms(achieved),
            "reveal_frame_spread_ms": common.summary_ms(framed), "next_frame_ms": common.summary_ms(out),
            "late_reveals": late, "revealed_per_step": len(revealed) / max(1, len(t0))}  # fmt: skip


async def run_browser(n: int, steps: int, embedded: bool = False, shots: Path = SHOTS, raw: str | None = None) -> dict:
    import websockets
    from playwright.async_api import async_playwright

    from bench.screen import _stored

    env = common.server_env(embedded=embedded)
    common.ensure_database(env)
    collect_static(env)
    for old in shots.glob("live-page-*.png"):
        old.unlink()
    group = common.prepare_group(env, n, started=False)
    server = common.Daphne(env)
    manager = await async_playwright().start()
    try:
        browser = await manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        pages, navigations = await open_pages(browser, server, group, n)
        url = f"ws://127.0.0.1:{server.port}/ws/group/{group['group_session']}/experimenter/"
        headers = [("Origin", server.url), ("Cookie", group["login_cookie"])]
        async with websockets.connect(url, additional_headers=headers, compression=None, ping_interval=None,
                                      max_size=2**26) as boss:  # fmt: skip
            drain = asyncio.create_task(fanout._drain(boss))
            await boss.send(json.dumps({"type": "start"}))  # step 0 on every page (not measured)
            await asyncio.gather(*(p.wait_for_function(SHOWN, arg=0, timeout=TIMEOUT_MS) for p in pages))
            t0 = await drive(pages, boss, steps, shots)
            drain.cancel()
        logs = [await p.evaluate(READ) for p in pages]
        if raw:
            Path(raw).write_text(json.dumps({"t0": t0, "pages": logs}))
        await browser.close()
    finally:
        await manager.stop()
        server.stop()
    taken = sorted(str(p) for p in shots.glob("live-page-*.png"))
    return {"variant": "chromium", "n": n, "steps": steps, **figures(logs, t0), "navigations": sum(navigations),
            "answers": _stored(env, group, n, steps), "screenshots": taken, "load": common.load_average()}  # fmt: skip


async def main_async(args) -> dict:
    common.raise_nofile()
    redis = None if args.embedded else common.PrivateRedis().start()
    try:
        return await run_browser(args.pages, args.steps, args.embedded, raw=args.raw)
    finally:
        if redis is not None:
            redis.stop()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--embedded", action="store_true", help="SQLite and the in-process layer")
    parser.add_argument("--raw", help="write t0 per step and every page's window.ensembleLive.log to this JSON file")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
