// Opens the sink's web view in headless Chromium (Debian's chromium, driven
// by playwright-core) and checks what it shows against what the test ran.
// Run by tests/integration/test_web.py:
//   node check_page.js SPEC.json
// SPEC: {url, job, total, failed_tasks: [task ids], workers: [ids],
//        hostile: {worker, error} or null, screenshot: path, chromium: path}
// Prints one JSON line of what it saw; exits 1 with the reason on stderr when
// a check fails.
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

async function main() {
  const origin = new URL(spec.url).origin;
  const browser = await chromium.launch({
    executablePath: spec.chromium,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const seen = { requests: [], foreign: [], errors: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("request", (r) => {
      seen.requests.push(r.url());
      const u = r.url();
      // data: URLs stay in the page; anything else must be this origin.
      if (!u.startsWith("data:") && new URL(u).origin !== origin)
        seen.foreign.push(u);
    });
    page.on("pageerror", (e) => seen.errors.push("pageerror: " + e.message));
    page.on("console", (m) => {
      if (m.type() === "error") seen.errors.push("console: " + m.text());
    });

    const resp = await page.goto(spec.url, { waitUntil: "load" });
    check(resp.status() === 200, "GET / answered " + resp.status());
    check(/^text\/html/.test(resp.headers()["content-type"] || ""),
          "content type " + resp.headers()["content-type"]);

    // The job's row, once the page has polled the state with it done.
    const row = page.locator(`#jobs tr[data-job-id="${spec.job}"]`);
    await page.waitForSelector(
      `#jobs tr[data-job-id="${spec.job}"][data-state="done"]`,
      { timeout: 20000 });
    const job = {
      state: (await row.locator("td.state").textContent()).trim(),
      percent: Number(await row.locator("td.pct").getAttribute("data-percent")),
      pct_text: (await row.locator("td.pct").textContent()).trim(),
      done: (await row.locator("td.done").textContent()).trim(),
      failed: (await row.locator("td.failed").textContent()).trim(),
    };
    const n = (s) => Number(s.replace(/,/g, ""));
    const [done, total] = job.done.split("/").map((s) => n(s.trim()));
    check(job.state === "done", "job state " + job.state);
    check(job.percent === 100 && job.pct_text === "100 %",
          "job percent " + job.percent + " / " + job.pct_text);
    check(done === spec.total && total === spec.total,
          "done / total " + job.done + ", want " + spec.total);
    check(n(job.failed) === spec.failed_tasks.length,
          "failed " + job.failed + ", want " + spec.failed_tasks.length);

    // Every worker has a row with the tasks it did.
    const workers = {};
    for (const id of spec.workers) {
      const w = page.locator(`#workers tr[data-worker-id="${id}"]`);
      check((await w.count()) === 1, "no row for worker " + id);
      workers[id] = n(await w.locator("td.tasks").textContent());
      check(workers[id] > 0, "worker " + id + " shows no tasks");
    }

    // The job's failure records, each with its error text.
    const failures = await page.$$eval("#failures tbody tr[data-task]", (trs) =>
      trs.map((tr) => ({
        job: tr.getAttribute("data-job-id"),
        task: Number(tr.getAttribute("data-task")),
        worker: tr.querySelector("td.worker").textContent,
        cause: tr.querySelector("td.cause").textContent,
        error: tr.querySelector("td.error").textContent,
      })));
    const mine = failures.filter((f) => f.job === spec.job);
    const tasks = mine.map((f) => f.task).sort((a, b) => a - b);
    const want = spec.failed_tasks.slice().sort((a, b) => a - b);
    check(JSON.stringify(tasks) === JSON.stringify(want),
          "failure rows for tasks " + JSON.stringify(tasks) + ", want " +
          JSON.stringify(want));
    check(mine.every((f) => f.error === "asked to fail" &&
                            f.cause === "plugin_error" &&
                            spec.workers.includes(f.worker)),
          "failure rows " + JSON.stringify(mine));

    // Text from the wire is shown as text: markup in it stays characters.
    if (spec.hostile) {
      const h = failures.find((f) => f.worker === spec.hostile.worker);
      check(h, "no row for the hostile failure in " + JSON.stringify(failures));
      check(h.error === spec.hostile.error,
            "hostile error shown as " + JSON.stringify(h.error));
      check((await page.locator("#failures img, #failures script, #failures b")
                      .count()) === 0,
            "text from the wire became elements");
    }

    // The chart has points, and pixels in the line's colour.
    await page.waitForFunction(
      () => Number(document.getElementById("chart").dataset.points) >= 2,
      null, { timeout: 10000 });
    const chart = await page.$eval("#chart", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let line = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i] === 0x2f && d[i + 1] === 0x6f && d[i + 2] === 0xd6 && d[i + 3] === 255)
          line++;
      return { points: Number(c.dataset.points), max: Number(c.dataset.max), line };
    });
    check(chart.points >= 2 && chart.max > 0 && chart.line > 50,
          "chart " + JSON.stringify(chart));

    await page.screenshot({ path: spec.screenshot, fullPage: true });
    check(seen.foreign.length === 0,
          "requests to other origins: " + JSON.stringify(seen.foreign));
    check(seen.errors.length === 0, "page errors: " + JSON.stringify(seen.errors));
    const apis = seen.requests.filter((u) => u.endsWith("/api/state")).length;
    check(apis >= 1, "the page never fetched /api/state");
    console.log(JSON.stringify({ job, workers, failures: failures.length, chart,
                                 requests: seen.requests.length, polls: apis,
                                 screenshot: spec.screenshot }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
