// Open clients/js/test/browser/index.html in headless Chromium and relay what the page reports
// (window.report) as JSON lines on stdout. stdin commands, one JSON per line:
// {"cmd": "reload"} reloads the page (its positions stay in localStorage);
// {"cmd": "close"} prints {"event": "done", stored, stats} and exits.
//
// usage: node js_client_page.mjs CHROMIUM PAGE_URL
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [executablePath, pageUrl] = process.argv.slice(2);
const out = (record) => process.stdout.write(JSON.stringify(record) + "\n");
const userDataDir = mkdtempSync(join(tmpdir(), "replay-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => out({ event: "page_error", message: String(err) }));
  page.on("console", (msg) => msg.type() === "error" && out({ event: "console_error", message: msg.text() }));
  await page.exposeFunction("report", (record) => out(record));
  await page.goto(pageUrl, { waitUntil: "load" });
  for await (const line of createInterface({ input: process.stdin })) {
    const { cmd } = JSON.parse(line);
    if (cmd === "reload") {
      await page.reload({ waitUntil: "load" });
    } else if (cmd === "close") {
      const seen = await page.evaluate(() => ({
        stored: window.replay.client.positions.get(window.replay.subscription.channel),
        stats: { ...window.replay.subscription.stats, ...window.replay.client.stats },
        listed: [...document.querySelectorAll("#received li")].map((li) => Number(li.textContent)),
      }));
      out({ event: "done", ...seen });
      break;
    }
  }
} finally {
  await context.close();
}
process.exit(0); // stdin's reader would keep the process alive
