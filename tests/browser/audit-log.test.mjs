// Browser tests for the Audit Log console, in real headless Chromium (playwright-core, no
// downloaded browsers). Run by `cargo test -p logbook --test browser`, which starts a filled
// server and sets:
//   LOGBOOK_URL       the console's base URL, e.g. http://127.0.0.1:41549
//   LOGBOOK_EMAIL     an admin's email
//   LOGBOOK_PASSWORD  that admin's password
//   LOGBOOK_TOKEN     an ingestion API token (to append events while a page is open)
// Optional: LOGBOOK_SCREENSHOTS=1 saves the README's screenshots to docs/screenshots/ (or to
// LOGBOOK_SCREENSHOT_DIR); CHROMIUM overrides /usr/bin/chromium.
//
// Every test drives the page like a person would (typing, clicking, the keyboard) and checks the
// result against the JSON API for the same filters, so a filter that is silently ignored, a pager
// that repeats a page or an export that differs from the table fails here.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BASE = required("LOGBOOK_URL").replace(/\/$/, "");
const EMAIL = required("LOGBOOK_EMAIL");
const PASSWORD = required("LOGBOOK_PASSWORD");
const TOKEN = required("LOGBOOK_TOKEN");
const SCREENSHOTS = process.env.LOGBOOK_SCREENSHOTS === "1";
const SHOT_DIR =
  process.env.LOGBOOK_SCREENSHOT_DIR || fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (see the top of this file)`);
  return v;
}

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** A new browser context signed in through the login form; returns { context, page }. */
async function signedIn(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  await page.goto(`${BASE}/login`);
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith("/login")), page.getByRole("button", { name: "Sign in" }).click()]);
  return { context, page };
}

async function openAuditLog(page, query = "") {
  await page.goto(`${BASE}/audit-log${query}`);
  await page.locator("table.log").waitFor();
}

/** The table's rows as the page shows them. */
async function rows(page) {
  return page.$$eval("table.log tbody tr[data-seq]", (trs) =>
    trs.map((tr) => {
      const cells = tr.querySelectorAll("td");
      const link = cells[0].querySelector("a");
      const action = cells[2].cloneNode(true);
      action.querySelectorAll(".badge").forEach((b) => b.remove());
      return {
        seq: Number(tr.dataset.seq),
        href: link?.getAttribute("href"),
        time: link?.getAttribute("title"), // the full local timestamp, with its offset
        timeText: cells[0].textContent.trim(),
        user: cells[1].textContent.trim(),
        action: action.textContent.trim(),
        details: cells[3].textContent.trim(),
      };
    }),
  );
}

/** Clicks `locator` and waits for the page it loads (even when the URL stays the same). */
async function clickAndWait(page, locator) {
  const navigated = page.waitForEvent("framenavigated", { predicate: (f) => f === page.mainFrame() });
  await locator.click();
  await navigated;
  await page.waitForLoadState("load");
}

async function apply(page) {
  await clickAndWait(page, page.getByRole("button", { name: "Apply" }));
  await page.locator("#results-summary").waitFor({ state: "attached" });
}

/** GET /api/v1/events with the page's session: one page, or every page when `all`. */
async function apiEvents(context, params, { all = false } = {}) {
  const out = [];
  let cursor = null;
  for (;;) {
    const q = new URLSearchParams(params);
    if (cursor) q.set("cursor", cursor);
    const resp = await context.request.get(`${BASE}/api/v1/events?${q}`);
    assert.equal(resp.status(), 200, await resp.text());
    const body = await resp.json();
    out.push(...body.events);
    cursor = body.next_cursor;
    if (!all || !cursor) return out;
  }
}

/**
 * Asserts that the table's rows are the API's first rows for the same filters. Viewing a filter
 * set records an "Audit Log Viewed" event (whose details name the filters, so a search can match
 * it) after the page is rendered: events newer than the table's first row are left out.
 */
function assertTableIsApi(got, api, message) {
  assert.ok(got.length > 0, `${message}: the table has rows`);
  const want = api.filter((e) => e.seq <= got[0].seq).slice(0, got.length);
  assert.deepEqual(got.map((r) => r.seq), want.map((e) => e.seq), message);
}

function params(entries) {
  const p = new URLSearchParams();
  for (const [k, v] of entries) p.append(k, v);
  return p;
}

/** Appends events through the ingestion API with the service token; returns their seqs. */
async function ingest(events) {
  const resp = await fetch(`${BASE}/api/v1/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify(events),
  });
  const text = await resp.text();
  assert.equal(resp.status, 201, text);
  return JSON.parse(text).seqs;
}

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF or LF line ends. */
function parseCsv(text) {
  const records = [];
  let record = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      record.push(field);
      records.push(record);
      record = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || record.length) {
    record.push(field);
    records.push(record);
  }
  return records;
}

/** Undoes the CSV's formula neutralization ('=…, '+…, '-…, '@…). */
const unneutralize = (v) => (/^'[=+\-@]/.test(v) ? v.slice(1) : v);

const shot = async (page, name, options = {}) => {
  if (!SCREENSHOTS) return;
  mkdirSync(SHOT_DIR, { recursive: true });
  await page.screenshot({ path: `${SHOT_DIR}/${name}.png`, ...options });
};

// ---------------------------------------------------------------------------------------------
// Tests (node:test runs them one after another, in this order)

test("sign in through the form and land on the Audit Log", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${BASE}/audit-log`);
    assert.match(new URL(page.url()).pathname, /^\/login/, "signed out, the Audit Log sends to the login page");

    // A wrong password keeps us on the login page.
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD + "-wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForLoadState("load");
    assert.match(new URL(page.url()).pathname, /^\/login/);
    assert.equal(await page.locator("table.log").count(), 0);

    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill(PASSWORD);
    await Promise.all([
      page.waitForURL((u) => u.pathname === "/audit-log"),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    await assert.doesNotReject(page.getByRole("heading", { level: 1, name: "Audit Log" }).waitFor());
    assert.match(await page.locator("table.log thead th").first().innerText(), /^Timestamp \(.+\)$/);
    const got = await rows(page);
    assert.ok(got.length > 0, "the log has rows");
    assert.ok(await page.getByText(EMAIL).first().isVisible(), "the header names who is signed in");
    // Newest first.
    const seqs = got.map((r) => r.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a));
  } finally {
    await context.close();
  }
});

test("screenshots for the README (LOGBOOK_SCREENSHOTS=1)", { skip: !SCREENSHOTS && "LOGBOOK_SCREENSHOTS is not 1" }, async () => {
  for (const colorScheme of ["light", "dark"]) {
    const { context, page } = await signedIn({ colorScheme, viewport: { width: 1280, height: 800 } });
    await openAuditLog(page);
    await shot(page, `audit-log-${colorScheme}`);
    await context.close();
  }

  {
    const { context, page } = await signedIn({ viewport: { width: 1280, height: 800 } });
    await openAuditLog(page, "?action=login.failed&action=user.role_updated&limit=25");
    await page.locator("details.multi summary").click();
    await page.locator("details.multi[open] fieldset").waitFor();
    await shot(page, "audit-log-filtered");

    await page.keyboard.press("Escape");
    await openAuditLog(page, "?action=user.role_updated");
    const first = (await rows(page))[0];
    await page.goto(`${BASE}${first.href}`);
    assert.match(await waitVerified(page), /✓ Verified/);
    await shot(page, "audit-log-entry");
    await context.close();
  }

  {
    // Tall enough to show the filters and the first rows below them.
    const { context, page } = await signedIn({ viewport: { width: 420, height: 1300 } });
    await openAuditLog(page);
    await shot(page, "audit-log-narrow");
    await context.close();
  }
});

test("search: type into the search box, Apply, every row matches", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const all = await rows(page);
    const term = "INVALID password"; // case-insensitive
    await page.getByLabel("Search", { exact: true }).fill(term);
    await apply(page);

    assert.equal(new URL(page.url()).searchParams.get("q"), term, "the search is in the URL");
    assert.equal(await page.getByLabel("Search", { exact: true }).inputValue(), term, "the search box keeps the term");
    const got = await rows(page);
    assert.ok(got.length > 0, "the demo data has failed sign-ins");
    assert.notDeepEqual(got.map((r) => r.seq), all.map((r) => r.seq), "the search changed the rows");
    for (const r of got) {
      const text = `${r.user} ${r.action} ${r.details}`.toLowerCase();
      assert.ok(text.includes(term.toLowerCase()), `row ${r.seq} does not match: ${JSON.stringify(r)}`);
    }
    const api = await apiEvents(context, { q: term, limit: "100" });
    assertTableIsApi(got, api, "the table shows what the API finds");

    // Nothing matches: an empty table, not an error.
    await page.getByLabel("Search", { exact: true }).fill("no-such-thing-" + Date.now());
    await apply(page);
    assert.equal((await rows(page)).length, 0);
    assert.ok(await page.getByText("No entries match these filters.").isVisible(), "an empty state, not an error");
  } finally {
    await context.close();
  }
});

test("filter by user: every row's User is that user", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const user = "ada@acme.example";
    const options = await page.$$eval("datalist#users-in-log option", (os) => os.map((o) => o.value));
    assert.ok(options.includes(user), "the User field suggests the users in the log");

    await page.getByLabel("User", { exact: true }).fill(user);
    await apply(page);
    assert.equal(new URL(page.url()).searchParams.get("user"), user);
    assert.equal(await page.getByLabel("User", { exact: true }).inputValue(), user);
    const got = await rows(page);
    assert.ok(got.length > 0);
    for (const r of got) assert.equal(r.user, user, `row ${r.seq}`);
    assertTableIsApi(got, await apiEvents(context, { user, limit: "50" }), "the table shows what the API finds");
  } finally {
    await context.close();
  }
});

test("two actions in the Action dropdown: rows are one of them, kept after reload and in the URL", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const menu = page.locator("details.multi");
    assert.equal(await menu.getAttribute("open"), null, "the menu starts closed");
    await menu.locator("summary").click();
    await assert.doesNotReject(menu.locator("fieldset").waitFor({ state: "visible" }));
    await menu.getByLabel("Login Failed").check();
    await menu.getByLabel("Logout").check();
    await menu.locator("summary").click(); // close the menu again (it covers the Apply button)
    await apply(page);

    const url = new URL(page.url());
    assert.deepEqual(url.searchParams.getAll("action").sort(), ["login.failed", "logout"]);
    const check = async () => {
      const checked = await page.$$eval("details.multi input[name=action]:checked", (is) => is.map((i) => i.value));
      assert.deepEqual(checked.sort(), ["login.failed", "logout"], "exactly the two actions stay checked");
      const got = await rows(page);
      assert.ok(got.length > 0);
      for (const r of got) assert.ok(["Login Failed", "Logout"].includes(r.action), `row ${r.seq}: ${r.action}`);
      return got;
    };
    const got = await check();
    const api = await apiEvents(context, params([["action", "login.failed"], ["action", "logout"], ["limit", "50"]]));
    assertTableIsApi(got, api, "the table shows what the API finds");

    await page.reload();
    await check();
    assert.notEqual(await menu.locator("summary").innerText(), "All actions", "the summary says actions are chosen");
  } finally {
    await context.close();
  }
});

test("date range: every row's timestamp is within From..To", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const from = day(-40);
    const to = day(-35);
    await page.getByLabel("From", { exact: true }).fill(from);
    await page.getByLabel("To (inclusive)").fill(to);
    await page.getByLabel("Per page").selectOption("100");
    await apply(page);

    const url = new URL(page.url());
    assert.equal(url.searchParams.get("from"), from);
    assert.equal(url.searchParams.get("to"), to);
    assert.equal(await page.getByLabel("From", { exact: true }).inputValue(), from);
    assert.equal(await page.getByLabel("To (inclusive)").inputValue(), to);

    const got = await rows(page);
    assert.ok(got.length > 10, `a six-day window of demo data has events (got ${got.length})`);
    for (const r of got) {
      // The title is the full timestamp in the platform's zone; its date is the day shown.
      const date = r.time.slice(0, 10);
      assert.ok(from <= date && date <= to, `row ${r.seq} at ${r.time} is outside ${from}..${to}`);
    }
    assertTableIsApi(got, await apiEvents(context, { from, to, limit: "100" }), "the table shows what the API finds");
  } finally {
    await context.close();
  }
});

test("pager: Older → then ← Newer returns to the first page", async () => {
  const { context, page } = await signedIn();
  try {
    // Failed sign-ins only: the views and sign-ins these tests cause cannot shift the pages.
    await openAuditLog(page, "?action=login.failed&limit=25");
    const first = await rows(page);
    assert.equal(first.length, 25);
    assert.equal(await page.getByRole("link", { name: "← Newer" }).count(), 0, "no newer page on the first page");

    await clickAndWait(page, page.getByRole("link", { name: "Older →" }));
    const second = await rows(page);
    assert.equal(second.length, 25);
    const firstSeqs = new Set(first.map((r) => r.seq));
    assert.ok(second.every((r) => !firstSeqs.has(r.seq)), "the pages share no row");
    assert.ok(Math.max(...second.map((r) => r.seq)) < Math.min(...first.map((r) => r.seq)), "older rows");
    const api = await apiEvents(context, { action: "login.failed", limit: "50" });
    assert.deepEqual([...first, ...second].map((r) => r.seq), api.map((e) => e.seq), "no row skipped between pages");
    assert.deepEqual(new URL(page.url()).searchParams.getAll("action"), ["login.failed"], "filters kept across pages");
    assert.deepEqual(await page.$$eval("input[name=action]:checked", (is) => is.map((i) => i.value)), ["login.failed"]);

    await clickAndWait(page, page.getByRole("link", { name: "Older →" }));
    const third = await rows(page);
    assert.ok(third.length > 0 && third[0].seq < second.at(-1).seq);

    await clickAndWait(page, page.getByRole("link", { name: "← Newer" }));
    assert.deepEqual((await rows(page)).map((r) => r.seq), second.map((r) => r.seq), "back to the second page");
    await clickAndWait(page, page.getByRole("link", { name: "← Newer" }));
    assert.deepEqual(await rows(page), first, "back to the first page");
  } finally {
    await context.close();
  }
});

test("refresh shows a newly appended event first", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const details = `Browser test: refresh ${Date.now()}`;
    const [seq] = await ingest([
      {
        action: "login.failed",
        actor: { type: "anonymous", id: "mallory@example.com" },
        details,
        outcome: "failure",
        source: { ip: "198.51.100.7", user_agent: "browser-test" },
      },
    ]);
    assert.equal(await page.getByText(details).count(), 0, "not shown before Refresh");
    await clickAndWait(page, page.getByRole("link", { name: "Refresh" }));
    const got = await rows(page);
    assert.equal(got[0].details, details, `the new event is first: ${JSON.stringify(got[0])}`);
    assert.equal(got[0].seq, seq);
    assert.equal(got[0].user, "mallory@example.com");
    assert.equal(got[0].action, "Login Failed");
  } finally {
    await context.close();
  }
});

test("export downloads a CSV equal to the filtered rows", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const user = "ben@acme.example";
    await page.getByLabel("User", { exact: true }).fill(user);
    await page.locator("details.multi summary").click();
    await page.locator("details.multi").getByLabel("Login Failed").check();
    await page.locator("details.multi").getByLabel("Login Success").check();
    await page.locator("details.multi summary").click();
    await page.getByLabel("Per page").selectOption("25");
    await apply(page);
    const table = await rows(page);
    assert.ok(table.length > 0);

    const link = page.getByRole("link", { name: "Download CSV" });
    const href = new URL(await link.getAttribute("href"), BASE);
    assert.equal(href.pathname, "/api/v1/events/export");
    assert.equal(href.searchParams.get("user"), user, "the download carries the filters");

    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    assert.match(download.suggestedFilename(), /\.csv$/);
    const text = readFileSync(await download.path(), "utf8").replace(/^\uFEFF/, "");
    const [header, ...records] = parseCsv(text);
    assert.deepEqual(header.slice(0, 4), ["Timestamp", "User", "Action", "Details"]);
    const col = (name) => header.indexOf(name);
    assert.ok(col("Seq") >= 0, header.join());

    // Every page of the same filters, from the JSON API.
    const api = await apiEvents(
      context,
      params([["user", user], ["action", "login.failed"], ["action", "login.success"], ["limit", "100"]]),
      { all: true },
    );
    assert.ok(api.length > table.length, `the filter spans several pages (${api.length} events)`);
    assert.equal(records.length, api.length, "one CSV row per matching event");
    records.forEach((rec, i) => {
      const e = api[i];
      assert.deepEqual(
        [rec[col("Timestamp")], unneutralize(rec[1]), rec[2], unneutralize(rec[3]), Number(rec[col("Seq")])],
        [e.time_local, e.user, e.action_label, e.details, e.seq],
        `CSV row ${i + 1}`,
      );
    });
    // And the first CSV rows are the table's rows, as shown.
    table.forEach((r, i) => {
      const rec = records[i];
      assert.deepEqual([rec[0], rec[1], rec[2], rec[3]], [r.time, r.user, r.action, r.details], `table row ${i + 1}`);
    });
  } finally {
    await context.close();
  }
});

async function waitVerified(page) {
  for (let i = 0; i < 20; i++) {
    const text = await page.locator("main").innerText();
    if (!/Not yet covered/i.test(text)) return text;
    await page.waitForTimeout(500);
    await page.reload();
  }
  return page.locator("main").innerText();
}

test("a row opens to its verified record", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page, "?user=ada%40acme.example");
    const row = (await rows(page))[2];
    await clickAndWait(page, page.locator(`tr[data-seq="${row.seq}"] a.rowlink`));
    assert.equal(new URL(page.url()).pathname, `/audit-log/events/${row.seq}`);
    const text = await waitVerified(page);
    assert.match(text, /✓ Verified/);
    const field = async (name) =>
      (await page.locator("table.record tr", { has: page.locator("th", { hasText: name }) }).first().locator("td").innerText()).trim();
    assert.equal(await field("Sequence number"), String(row.seq));
    const [e] = await apiEvents(context, { user: "ada@acme.example", limit: "3" }).then((es) => es.filter((x) => x.seq === row.seq));
    assert.ok(e, "the API has the row");
    assert.equal(await field("Leaf hash"), e.leaf_hash);
    assert.equal(await field("User"), row.user);
    assert.equal(await field("Details"), row.details);
    assert.match(await field("Action"), new RegExp(`^${row.action}`));

    // Back to the list.
    await clickAndWait(page, page.getByRole("link", { name: "← Audit Log" }));
    assert.equal(new URL(page.url()).pathname, "/audit-log");
  } finally {
    await context.close();
  }
});

test("keyboard: the filter form works with Tab, Space, Enter and Escape", async () => {
  const { context, page } = await signedIn();
  try {
    await openAuditLog(page);
    const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    const tabTo = async (want, max = 40) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press("Tab");
        if ((await focused()) === want) return;
      }
      assert.fail(`Tab never reached ${want}`);
    };

    // The skip link comes first and moves focus to the content.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), "Skip to content");

    await tabTo("q");
    await page.keyboard.type("password");
    await tabTo("user", 3);
    await page.keyboard.type("ada@acme.example");
    await page.keyboard.press("Escape"); // closes the datalist suggestions, if any
    await tabTo("SUMMARY", 3);
    await page.keyboard.press("Enter");
    assert.notEqual(await page.locator("details.multi").getAttribute("open"), null, "Enter opens the action menu");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.value), "login.success");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Space");
    assert.ok(await page.locator("input[value='login.failed']").isChecked(), "Space checks an action");
    await page.keyboard.press("Escape");
    assert.equal(await page.locator("details.multi").getAttribute("open"), null, "Escape closes the menu");
    assert.equal(await focused(), "SUMMARY", "and returns focus to it");

    // Enter in a text field submits the whole form.
    await page.keyboard.press("Shift+Tab");
    assert.equal(await focused(), "user");
    await Promise.all([page.waitForURL((u) => u.searchParams.has("q")), page.keyboard.press("Enter")]);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get("q"), "password");
    assert.equal(url.searchParams.get("user"), "ada@acme.example");
    assert.deepEqual(url.searchParams.getAll("action"), ["login.failed"]);
    const got = await rows(page);
    assert.ok(got.length > 0);
    for (const r of got) assert.ok(r.user === "ada@acme.example" && r.action === "Login Failed", JSON.stringify(r));

    // The Apply button answers Enter too.
    await page.getByLabel("Per page").selectOption("25");
    await page.getByRole("button", { name: "Apply" }).focus();
    await Promise.all([page.waitForURL((u) => u.searchParams.get("limit") === "25"), page.keyboard.press("Enter")]);
    assert.ok((await rows(page)).length <= 25);
  } finally {
    await context.close();
  }
});

test("narrow window (420 px): no horizontal page overflow; filters and first column visible", async () => {
  const { context, page } = await signedIn({ viewport: { width: 420, height: 900 } });
  try {
    await openAuditLog(page);
    const m = await page.evaluate(() => {
      const box = (el) => {
        const r = el.getBoundingClientRect();
        return { left: r.left, right: r.right, width: r.width, height: r.height };
      };
      return {
        viewport: document.documentElement.clientWidth,
        scrollWidth: document.documentElement.scrollWidth,
        bodyScrollWidth: document.body.scrollWidth,
        form: box(document.querySelector("form.filters")),
        apply: box(document.querySelector("form.filters button[type=submit]")),
        firstCell: box(document.querySelector("table.log tbody tr[data-seq] td")),
        heading: box(document.querySelector("h1")),
      };
    });
    const overflowing = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .filter((el) => !el.closest(".table-wrap"))
        .slice(0, 5)
        .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`),
    );
    const detail = `${JSON.stringify(m)} overflowing: ${overflowing.join("; ")}`;
    assert.ok(m.scrollWidth <= m.viewport, `the page scrolls sideways at 420 px: ${detail}`);
    for (const part of ["form", "apply", "firstCell", "heading"]) {
      assert.ok(m[part].width > 0 && m[part].left >= 0 && m[part].right <= m.viewport + 1, `${part} is cut off: ${detail}`);
    }
    assert.ok(await page.getByRole("button", { name: "Apply" }).isVisible());
    assert.ok(await page.locator("table.log tbody tr[data-seq] a.rowlink").first().isVisible());
  } finally {
    await context.close();
  }
});

test("works without JavaScript: search and page", async () => {
  const { context, page } = await signedIn({ javaScriptEnabled: false });
  try {
    assert.equal(new URL(page.url()).pathname, "/audit-log", "the login form works without JavaScript");
    await openAuditLog(page);
    await page.getByLabel("Search", { exact: true }).fill("invalid password");
    await page.getByLabel("Per page").selectOption("25");
    await apply(page);
    const first = await rows(page);
    assert.equal(first.length, 25);
    for (const r of first) assert.match(r.details, /invalid password/i);

    // The action menu is a <details>: it opens without script.
    await page.locator("details.multi summary").click();
    assert.ok(await page.locator("details.multi").getByLabel("Logout").isVisible());

    await clickAndWait(page, page.getByRole("link", { name: "Older →" }));
    const second = await rows(page);
    assert.ok(second.length > 0);
    assert.ok(second[0].seq < first.at(-1).seq, "the next page is older");
    for (const r of second) assert.match(r.details, /invalid password/i);
    assert.equal(new URL(page.url()).searchParams.get("q"), "invalid password");
    await clickAndWait(page, page.getByRole("link", { name: "← Newer" }));
    // Back on the first page: its rows again, below this session's own "Audit Log Viewed"
    // events recorded since (their details contain the search, so the search finds them).
    const back = await rows(page);
    const added = back.filter((r) => r.seq > first[0].seq);
    for (const r of added) assert.ok(r.user === EMAIL && r.action === "Audit Log Viewed", `unexpected new row ${JSON.stringify(r)}`);
    assert.deepEqual(back.slice(added.length), first.slice(0, back.length - added.length), "the first page's rows again");
  } finally {
    await context.close();
  }
});
