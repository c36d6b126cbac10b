"""Page object for the viewer (VolView style): every locator is a data-testid."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

LONG = 90_000  # ms: loads on a shared 2-core machine can be slow; never a timing assertion

PANE_PIXELS_JS = """
(tid) => {
  const img = document.querySelector(`[data-testid="${tid}"] img`);
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let nonBlack = 0, sum = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i] + d[i + 1] + d[i + 2];
    if (v > 30) nonBlack++;
    sum = (sum + v * ((i >> 2) % 97 + 1)) % 1000000007;
  }
  return {nonBlack, total: c.width * c.height, digest: sum, src: img.src};
}
"""

WATCH_STEPS_JS = """
() => {
  window.__seenSteps = new Set();
  const record = () => document.querySelectorAll('[data-testid^="step-"]').forEach(
      (el) => window.__seenSteps.add(el.getAttribute('data-testid')));
  record();
  window.__stepObserver = new MutationObserver(record);
  window.__stepObserver.observe(document.body, {subtree: true, childList: true, attributes: true});
}
"""


class ViewerPage:
    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    def tid(self, name: str):
        return self.page.get_by_test_id(name)

    # -- navigation -----------------------------------------------------------------------------------
    def open(self) -> None:
        self.page.goto(self.url)
        expect(self.tid("app-ready")).to_be_visible(timeout=LONG)

    # -- controls -------------------------------------------------------------------------------------
    def _pick(self, select_tid: str, text: str) -> None:
        self.tid(select_tid).click()
        option = self.page.locator(".v-overlay--active .v-list-item").filter(has_text=text).first
        option.click()
        expect(self.page.locator(".v-overlay--active .v-list")).to_have_count(0, timeout=10_000)

    def select_ct(self, text: str) -> None:
        self._pick("ct-select", text)
        expect(self.tid("ct-select")).to_contain_text(text)

    def select_network(self, label: str) -> None:
        self._pick("network-select", label)
        expect(self.tid("network-select")).to_contain_text(label)

    def select_language(self, label: str) -> None:
        self._pick("lang-select", label)

    def choose_mode(self, mode: str) -> None:
        self.tid(f"mode-{mode}").click()
        expect(self.tid(f"mode-{mode}")).to_have_class(re.compile(r"v-btn--active"), timeout=10_000)

    def load(self) -> None:
        """Click Load and wait until the server started this load (so a later "finished" is this one's)."""
        expect(self.tid("load-button")).to_be_enabled(timeout=LONG)
        serial = int(self.tid("load-serial").text_content() or 0)
        self.tid("load-button").click()
        expect(self.tid("load-serial")).to_have_text(str(serial + 1), timeout=LONG)

    def cancel(self) -> None:
        self.tid("cancel-button").click()

    def wl_preset(self, name: str) -> None:
        self.tid(f"wl-{name}").click()

    # -- reading --------------------------------------------------------------------------------------
    def state(self) -> str:
        return self.tid("load-state").inner_text().strip()

    def wait_state(self, *states: str, timeout: int = LONG) -> str:
        pattern = "^(" + "|".join(states) + ")$"
        expect(self.tid("load-state")).to_have_text(re.compile(pattern), timeout=timeout)
        return self.state()

    def load_and_finish(self, ct: str, mode: str, network: str = "Unlimited") -> None:
        self.select_ct(ct)
        self.select_network(network)
        self.choose_mode(mode)
        self.load()
        self.wait_state("finished")
        expect(self.tid("load-button")).to_be_enabled(timeout=LONG)

    def pane_pixels(self, pane: str) -> dict | None:
        return self.page.evaluate(PANE_PIXELS_JS, f"pane-{pane}")

    def wait_pane_content(self, pane: str, min_fraction: float = 0.05, timeout_s: float = 90) -> dict:
        """Wait until the pane's image has at least ``min_fraction`` non-black pixels."""
        deadline = time.monotonic() + timeout_s
        info = None
        while time.monotonic() < deadline:
            info = self.pane_pixels(pane)
            if info and info["nonBlack"] >= min_fraction * info["total"]:
                return info
            self.page.wait_for_timeout(250)
        raise AssertionError(f"pane {pane} stayed (nearly) black: {info}")

    def _wait_pane(self, pane: str, done, what: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        info = None
        while time.monotonic() < deadline:
            info = self.pane_pixels(pane)
            if info and done(info):
                return info
            self.page.wait_for_timeout(100)
        raise AssertionError(f"pane {pane} {what}: {info}")

    def wait_pane_change(self, pane: str, digest: int, timeout_s: float = 60) -> dict:
        """Wait until the pane shows an image other than the one with ``digest``."""
        return self._wait_pane(pane, lambda i: i["digest"] != digest, "image did not change", timeout_s)

    def wait_pane_digest(self, pane: str, digest: int, timeout_s: float = 60) -> dict:
        """Wait until the pane shows exactly the image with ``digest``."""
        return self._wait_pane(pane, lambda i: i["digest"] == digest, f"never showed the image {digest}", timeout_s)

    def wait_pane_stable(self, pane: str, reads: int = 3, timeout_s: float = 60) -> dict:
        """Wait until ``reads`` consecutive reads (250 ms apart) give the same image: late frames have landed."""
        deadline = time.monotonic() + timeout_s
        seen: list[int] = []
        info = None
        while time.monotonic() < deadline:
            info = self.pane_pixels(pane)
            seen = [*seen, info["digest"] if info else None][-reads:]
            if len(seen) == reads and len(set(seen)) == 1 and seen[0] is not None:
                return info
            self.page.wait_for_timeout(250)
        raise AssertionError(f"pane {pane} image never settled: {info}")

    def watch_steps(self) -> None:
        self.page.evaluate(WATCH_STEPS_JS)

    def seen_steps(self) -> set[str]:
        return set(self.page.evaluate("() => Array.from(window.__seenSteps || [])"))

    def result_rows(self):
        return self.tid("results-row")
