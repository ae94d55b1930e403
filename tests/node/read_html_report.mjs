// Load an HTML report in headless Chromium with the network cut off, and print, as JSON, what
// a reader sees: the section headings in order, the failures listed, the in-page links and
// whether their targets exist, the grid's cells, and every request that tried to leave the file.
//
// usage: node read_html_report.mjs CHROMIUM REPORT.html
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [executablePath, report] = process.argv.slice(2);
const userDataDir = mkdtempSync(join(tmpdir(), "replay-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  offline: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await context.newPage();
  const leaving = [];
  const consoleErrors = [];
  page.on("console", (msg) => msg.type() === "error" && consoleErrors.push(msg.text()));
  page.on("pageerror", (err) => consoleErrors.push(String(err)));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:")) return route.continue();
    leaving.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  const seen = await page.evaluate(() => {
    const visible = (el) => el.getClientRects().length > 0;
    return {
      title: document.title,
      headings: [...document.querySelectorAll("h2")].map((h) => h.textContent),
      failures: [...document.querySelectorAll("section.failure")].map((s) => ({
        case: s.querySelector("h3").textContent,
        text: s.innerText,
        visible: visible(s),
        top: s.getBoundingClientRect().top,
      })),
      inPageLinks: [...document.querySelectorAll('a[href^="#"]')].map((a) => ({
        href: a.getAttribute("href"),
        resolves: document.getElementById(a.getAttribute("href").slice(1)) !== null,
      })),
      specLinks: [...document.querySelectorAll('a[href^="file:"]')].map((a) => a.href),
      cells: [...document.querySelectorAll(".grid .cell")].map((c) => ({
        id: c.textContent,
        status: c.className.replace("cell ", ""),
        color: getComputedStyle(c).backgroundColor,
      })),
      gridTop: document.getElementById("grid").getBoundingClientRect().top,
      images: [...document.images].map((i) => i.src),
    };
  });
  // A clause link lands on the clause: click the first failing cell and see where we are.
  const failing = seen.cells.find((c) => c.status === "failed");
  if (failing) {
    await page.click(`.grid .cell.failed >> nth=0`);
    seen.afterClick = await page.evaluate(() => location.hash);
  }
  console.log(JSON.stringify({ ...seen, leaving, consoleErrors }));
} finally {
  await context.close();
}
