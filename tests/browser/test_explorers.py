"""The explorers as a student meets them: JupyterLab in Chromium, Run All, then the controls moved.

For each notebook with an explorer (01-09), in one browser: open it (it must not be marked
modified), run every cell through the Run menu (smoke mode: the training notebook runs its short
version), find the explorer, and move each kind of control it has (a key press on a slider, a
drag of a slider, a dropdown or a checkbox). After each action the figure must have been replaced
exactly once, by a different one, and the explorer must show one figure, no label cut off, and no
error; no output of the notebook may be an error or stderr, and no dialog, console error or page
error may appear. Screenshots of each explorer before and after the moves, the timings and
JupyterLab's log go to the folder the test prints (``build/browser`` by default).

Run it with ``make test-browser`` (set-up: README, "The browser test").
"""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.browser

NOTEBOOKS = [
    "01_default_boxes",
    "02_matching",
    "03_hard_negative_mining",
    "04_multibox_loss",
    "05_nms",
    "06_ssd_architecture",
    "07_data_augmentation",
    "08_evaluation_map",
    "09_train_shapes_cpu",
]
RUN_ALL_TIMEOUT = 600  # s, the smoke run of the slowest notebook (09) on a busy 2-core machine
REDRAW_TIMEOUT = 60  # s until the first new figure after an action
QUIET = 1.5  # s without a new figure, kernel idle: the action's redraws are over
# what the explorer of notebook 01 must show after its first action (a key press on "map k",
# 0 -> 1): the middle cell of the 38x38 map is in the middle of the 19x19 map, not its corner
EXPECTED_AFTER_FIRST = {"01_default_boxes": {"row i": "9", "column j": "9"}}

# helpers in the page, on top of the JupyterLab application object (--LabApp.expose_app_in_browser)
PAGE_HELPERS = """
window.__panel = (path) => {
  if (!window.jupyterapp) return null;
  for (const w of window.jupyterapp.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) return w;
  }
  return null;
};
window.__state = (path) => {
  const panel = window.__panel(path);
  if (!panel) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.model.cells;
  const out = {kernel: kernel ? kernel.status : 'none', dirty: panel.context.model.dirty,
               code: 0, done: 0, running: 0, errors: []};
  for (let n = 0; n < cells.length; n++) {
    const cell = cells.get(n);
    if (cell.type !== 'code') continue;
    out.code += 1;
    const running = cell.executionState === 'running' || cell.executionCount === null;
    if (running) out.running += 1; else out.done += 1;
    for (let i = 0; i < cell.outputs.length; i++) {
      const o = cell.outputs.get(i).toJSON();
      if (o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr')) {
        const text = o.output_type === 'error' ? o.ename + ': ' + o.evalue : String(o.text);
        out.errors.push('cell ' + n + ': ' + text.slice(0, 2000));
      }
    }
  }
  return out;
};
window.__watch = (el) => {
  // the explorer's figures are <img>s, replaced as new nodes or, when JupyterLab re-renders an
  // output in place, by a new src: record each time the page shows a different set of figures
  // (a blank between two figures, while an output is cleared, is not a figure)
  window.__redraws = [];
  let last = [...el.querySelectorAll('img')].map((img) => img.src).join(' ');
  new MutationObserver(() => {
    const now = [...el.querySelectorAll('img')].map((img) => img.src).join(' ');
    if (now && now !== last) window.__redraws.push(performance.now());
    if (now) last = now;
  }).observe(el, {childList: true, subtree: true, attributes: true, attributeFilter: ['src']});
};
window.__explorer = (el) => ({
  figures: [...el.querySelectorAll('img')].map((img) => img.src),
  errors: [...el.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map((e) => e.textContent.slice(0, 2000)),
  cut: [...el.querySelectorAll('.widget-label, .widget-label-basic span')]
    .filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent),
  readouts: Object.fromEntries([...el.querySelectorAll('.widget-slider')].map((s) => [
    s.querySelector('.widget-label').textContent, s.querySelector('.widget-readout').textContent,
  ])),
});
"""


class Page:
    """One notebook open in its own JupyterLab page, with what went wrong collected."""

    def __init__(self, browser, lab, name: str):
        self.name, self.path, self.lab = name, f"notebooks/{name}.ipynb", lab
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("dialog", self._dialog)
        self.page.add_init_script(PAGE_HELPERS)
        # a workspace per notebook, so that no page reopens the notebooks of the pages before
        self.page.goto(
            f"{lab.url}/lab/workspaces/test-{name[:2]}/tree/{self.path}?token={lab.token}"
        )

    def _console(self, message) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _dialog(self, dialog) -> None:
        self.problems.append(f"browser dialog: {dialog.message}")
        dialog.dismiss()

    def state(self) -> dict | None:
        return self.page.evaluate("(path) => window.__state(path)", self.path)

    def wait(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state and state["errors"]:
                errors = "\n".join(state["errors"])
                pytest.fail(f"{self.name}: error output while {what}:\n{errors}")
            if state and predicate(state):
                return state
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: timed out after {timeout} s {what}: {state}")
            self.check_no_problems(what)
            time.sleep(0.25)

    def check_no_problems(self, when: str) -> None:
        dialogs = self.page.locator(".jp-Dialog")
        if dialogs.count():
            self.problems.append(f"JupyterLab dialog: {dialogs.first.inner_text()[:500]}")
        assert not self.problems, f"{self.name}, {when}:\n" + "\n".join(self.problems)

    def run_all(self) -> float:
        """Run every cell through the Run menu, as a student does; returns the seconds it took."""
        start = time.monotonic()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        item = self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
        item.click()
        # stored outputs count as done until the run clears them: see it start, then finish
        self.wait(lambda s: s["running"] > 0 or s["kernel"] == "busy", 60, "starting Run All")
        self.wait(
            lambda s: s["done"] == s["code"] and s["kernel"] == "idle",
            RUN_ALL_TIMEOUT,
            "running all cells",
        )
        return time.monotonic() - start

    def close(self) -> None:
        for session in self.lab.api("GET", "/api/sessions"):
            if session["path"] == self.path:
                self.lab.api("DELETE", f"/api/sessions/{session['id']}")  # and its kernel
        self.page.close()


def explorer_state(page: Page, explorer) -> dict:
    return explorer.evaluate("(el) => window.__explorer(el)")


def act(page: Page, explorer, kind: str) -> str:
    """Move one control of ``kind`` (key, drag, dropdown, checkbox); returns what was moved."""
    p = page.page
    if kind in ("key", "drag"):
        sliders = explorer.locator(".widget-slider")
        slider = sliders.first if kind == "key" else sliders.last
        handle = slider.locator(".noUi-handle")
        label = slider.locator(".widget-label").inner_text()
        if kind == "key":
            handle.focus()
            p.keyboard.press("ArrowRight")
            return f'key on "{label}"'
        track = slider.locator(".noUi-target").bounding_box()
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # towards the far side of the track: the value always changes
        dx = -0.3 * track["width"] if x > track["x"] + track["width"] / 2 else 0.3 * track["width"]
        p.mouse.move(x, y)
        p.mouse.down()
        p.mouse.move(x + dx, y, steps=12)  # a real drag: twelve positions on the way
        p.mouse.up()
        return f'drag of "{label}"'
    if kind == "dropdown":
        select = explorer.locator("select").first
        options = select.locator("option").all_inner_texts()
        # the last choice (the first if it is chosen): on notebook 01, "squares only", which
        # changes every map (the next one may not: map 1 already has the ratios [2, 3])
        last = len(options) - 1
        index = 0 if select.evaluate("(s) => s.selectedIndex") == last else last
        select.select_option(index=index)
        return "dropdown " + repr(options[index].replace("\xa0", " "))
    box = explorer.locator("input[type=checkbox]").first
    box.click()
    return "checkbox"


def redraw_after(page: Page, explorer, kind: str, before: dict) -> tuple[str, float, dict]:
    """Do one action; wait for its redraws; check them. Returns (action, response s, state)."""
    count = page.page.evaluate("window.__redraws.length")
    t0 = page.page.evaluate("performance.now()")
    action = act(page, explorer, kind)
    deadline = time.monotonic() + REDRAW_TIMEOUT
    while page.page.evaluate("window.__redraws.length") == count:
        assert time.monotonic() < deadline, f"{page.name}: no new figure after {action}"
        page.check_no_problems(action)
        time.sleep(0.05)
    first = page.page.evaluate(f"window.__redraws[{count}]")
    # over when the kernel is idle and no figure has come for QUIET seconds
    while True:
        last = page.page.evaluate("window.__redraws[window.__redraws.length - 1]")
        idle = page.state()["kernel"] == "idle"
        if idle and page.page.evaluate("performance.now()") - last > QUIET * 1000:
            break
        time.sleep(0.1)
    redraws = page.page.evaluate("window.__redraws.length") - count
    after = explorer_state(page, explorer)
    page.check_no_problems(action)
    assert not after["errors"], f"{page.name}: {action} showed an error: {after['errors']}"
    assert redraws == 1, f"{page.name}: {action} redrew {redraws} times, not once"
    shown = len(after["figures"])
    assert shown == 1, f"{page.name}: {shown} figures after {action}"
    assert after["figures"] != before["figures"], f"{page.name}: {action} left the figure as it was"
    return action, (first - t0) / 1000, after


@pytest.fixture(scope="module")
def timings(artifacts):
    found: dict[str, dict] = {}
    yield found
    (artifacts / "timings.json").write_text(json.dumps(found, indent=1))
    print("\nbrowser test timings (Run All; each action until its new figure is in the page)")
    for name, t in found.items():
        actions = ", ".join(f"{a} {s:.2f} s" for a, s in t["actions"])
        print(f"  {name}: Run All {t['run_all_s']:.1f} s; {actions}")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_explorer_in_jupyterlab(name, lab, browser, artifacts, timings):
    page = Page(browser, lab, name)
    try:
        # opened and connected to its kernel, the notebook must not count as modified (a wrong
        # stored kernelspec made JupyterLab rewrite it, and closing asked to save)
        page.wait(lambda s: s["kernel"] == "idle", 120, "opening the notebook")
        page.page.wait_for_timeout(1000)  # JupyterLab updates the metadata once the kernel is known
        assert page.state()["dirty"] is False, f"{name} is marked modified as soon as it opens"
        run_all_s = page.run_all()

        explorers = page.page.locator(".ssd-edu-explorer")
        assert explorers.count() == 1, f"{name}: {explorers.count()} explorers, want 1"
        explorer = explorers.first
        explorer.scroll_into_view_if_needed()
        explorer.evaluate("(el) => window.__watch(el)")
        state = explorer_state(page, explorer)
        shown = len(state["figures"])
        assert shown == 1, f"{name}: the explorer shows {shown} figures"
        assert not state["cut"], f"{name}: labels cut off: {state['cut']}"
        explorer.screenshot(path=artifacts / f"{name}_before.png")

        kinds = ["key", "drag"]
        if explorer.locator("select").count():
            kinds.append("dropdown")
        elif explorer.locator("input[type=checkbox]").count():
            kinds.append("checkbox")
        actions = []
        for n, kind in enumerate(kinds):
            action, seconds, state = redraw_after(page, explorer, kind, state)
            actions.append((action, seconds))
            if n == 0:
                for label, value in EXPECTED_AFTER_FIRST.get(name, {}).items():
                    assert state["readouts"][label] == value, (name, action, state["readouts"])
        explorer.screenshot(path=artifacts / f"{name}_after.png")
        timings[name] = {"run_all_s": run_all_s, "actions": actions}
        page.check_no_problems("the end")
    finally:
        page.close()
