// The console in a real headless Chromium (Debian's `chromium`, driven by playwright-core
// through `executablePath`), against a running `erpos demo` at ERPOS_URL (issue 15). Run
// by .ci/console.sh. A screenshot of every page it visits goes to ERPOS_SCREENSHOTS.
//
// The staff workspace: the front desk 周婷 logs in, finds 张三 by typing `zs`, opens a new
// patient's form generated from the DataItem, sees the server's validation message at the
// phone field it names, saves a valid one, switches to English, and receives a walk-in
// visit from her to-do list (claim, then agree). A nurse, who may not create patients nor
// start visits, sees neither the button nor the menu entry.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.ERPOS_URL;
if (!base) throw new Error("set ERPOS_URL to a running erpos demo");
const shots = process.env.ERPOS_SCREENSHOTS ?? "screenshots";
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
let failures = 0;
let passed = 0;

/** Runs one named check, counting it, with a screenshot of where it failed. */
async function check(page, name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message : e}`);
    await page.screenshot({ path: join(shots, `FAILED-${name.replace(/\W+/g, "-")}.png`), fullPage: true });
  }
}

/** Saves a screenshot of the page as `name`.png. */
async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function login(page, user) {
  await page.goto(base);
  await page.getByLabel(/用户名|User/).fill(user);
  await page.getByLabel(/密码|Password/).fill("erpos-demo");
  await page.getByRole("button", { name: /登录|Log in/ }).click();
  await page.getByRole("navigation", { name: "menu" }).waitFor();
}

const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" });
const page = await context.newPage();
page.setDefaultTimeout(10_000);
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));

await check(page, "the console is served at / with its login", async () => {
  const res = await page.goto(base);
  if (!res || res.status() !== 200) throw new Error(`GET / answered ${res?.status()}`);
  await page.getByRole("form", { name: "登录" }).waitFor();
  await shot(page, "01-login");
});

await check(page, "a wrong password is told", async () => {
  await page.getByLabel("用户名").fill("qiantai_zhou");
  await page.getByLabel("密码").fill("wrong-password");
  await page.getByRole("button", { name: "登录" }).click();
  await page.getByRole("alert").filter({ hasText: "用户名或密码错误" }).waitFor();
});

await check(page, "the front desk logs in and sees her menu", async () => {
  await login(page, "qiantai_zhou");
  const nav = page.getByRole("navigation", { name: "menu" });
  for (const entry of ["我的待办", "治疗就诊", "患者"]) await nav.getByRole("link", { name: entry }).waitFor();
  await shot(page, "02-home");
});

await check(page, "typing zs finds 张三", async () => {
  await page.getByRole("navigation", { name: "menu" }).getByRole("link", { name: "患者", exact: true }).click();
  await page.getByRole("searchbox").fill("zs");
  await page.getByRole("cell", { name: "张三", exact: true }).waitFor();
  const rows = await page.locator("tbody tr").count();
  if (rows !== 1) throw new Error(`${rows} rows for zs`);
  await shot(page, "03-patients-zs");
});

await check(page, "the form shows the server's message at the field", async () => {
  await page.getByRole("link", { name: "新建" }).click();
  await page.getByLabel(/^姓名/).fill("测试患者");
  await page.getByLabel(/^病历号/).fill("MR2026-0990");
  await page.getByLabel(/^手机/).fill("12345");
  await page.getByRole("button", { name: "保存" }).click();
  await page.getByRole("alert").filter({ hasText: "请修改标出的字段" }).waitFor();
  // The message sits with the phone input, not in a list elsewhere.
  const phoneGroup = page.locator(".form-group", { has: page.getByLabel(/^手机/) });
  await phoneGroup.locator(".text-danger, .error-detail").first().waitFor();
  await shot(page, "04-patient-form-errors");
  await page.getByLabel(/^手机/).fill("13912345678");
  await page.getByRole("button", { name: "保存" }).click();
  await page.getByRole("status").filter({ hasText: "已保存" }).waitFor();
  if (!/\/records\/patient\/[0-9a-f-]{36}$/.test(page.url())) throw new Error(`stayed at ${page.url()}`);
  await shot(page, "05-patient-saved");
});

await check(page, "English labels from the same catalogue and the kernel's labels", async () => {
  await page.getByRole("button", { name: "English" }).click();
  await page.getByRole("navigation", { name: "menu" }).getByRole("link", { name: "Patient", exact: true }).waitFor();
  await page.getByRole("button", { name: "Log out" }).waitFor();
  await shot(page, "06-english");
  await page.getByRole("button", { name: "中文" }).click();
});

await check(page, "a walk-in is received from the to-do list", async () => {
  await page.getByRole("navigation", { name: "menu" }).getByRole("link", { name: "我的待办" }).click();
  const row = page.locator("tbody tr.clickable").filter({ hasText: "到诊登记" }).first();
  await row.waitFor();
  await shot(page, "07-todo");
  await row.click();
  await page.getByRole("button", { name: "认领" }).click();
  await page.getByRole("button", { name: "同意" }).waitFor();
  await page.getByRole("img").first().waitFor();
  await shot(page, "08-process-claimed");
  await page.getByTestId("step").filter({ hasText: "到诊登记" }).waitFor();
  await page.getByRole("button", { name: "同意" }).click();
  // Received: the visit moves on to its next step (consent), out of her hands.
  await page.getByTestId("step").filter({ hasText: "知情同意" }).waitFor();
  await shot(page, "09-process-handled");
});

await check(page, "a nurse sees neither the button nor the menu entry she may not use", async () => {
  await page.getByRole("button", { name: "退出" }).click();
  await page.getByRole("form", { name: "登录" }).waitFor();
  await login(page, "hushi_wang");
  const nav = page.getByRole("navigation", { name: "menu" });
  await nav.getByRole("link", { name: "患者", exact: true }).click();
  await page.getByRole("cell").first().waitFor();
  if (await page.getByRole("link", { name: "新建" }).count()) throw new Error("the nurse is offered 新建");
  if (await nav.getByRole("link", { name: "治疗就诊" }).count()) throw new Error("the nurse may start a visit");
  await shot(page, "10-nurse-patients");
});

await check(page, "the page threw no script error", async () => {
  if (consoleErrors.length) throw new Error(consoleErrors.join("; "));
});

await browser.close();
console.log(`console: ${passed} passed, ${failures} failed; screenshots in ${shots}`);
process.exit(failures ? 1 : 0);
