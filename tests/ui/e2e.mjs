// End-to-end test of the web UI in headless Chromium, driven by Playwright:
// import the chat CSV, create and run experiments on a tiny random model, watch the
// chart update, open the insights, chat, compare, change settings, delete everything,
// and the error paths (a bad file, a bad setting). A screenshot of each page goes to
// the artifacts folder.
//
//   node e2e.mjs STUDIO_URL MODEL_DIR DATA_ZIP ARTIFACTS_DIR
//
// `crates/lathe-cli/tests/ui.rs` starts the studio and the model and runs this.

import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, modelDir, dataZip, artifacts] = process.argv.slice(2);
if (!artifacts) {
  console.error("usage: node e2e.mjs STUDIO_URL MODEL_DIR DATA_ZIP ARTIFACTS_DIR");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const profile = mkdtempSync(join(tmpdir(), "lathe-ui-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1360, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(60_000);
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && problems.push(`console: ${m.text()}`));
page.on("dialog", (d) => d.accept(d.type() === "prompt" ? "renamed-b" : undefined));

let shot = 0;
async function screenshot(name) {
  shot += 1;
  await page.screenshot({ path: join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}
async function go(hash) {
  await page.goto(`${url}/${hash}`);
  await page.waitForLoadState("domcontentloaded");
}
const step = (name) => console.log(`• ${name}`);

try {
  step("home");
  await go("#/");
  await page.getByRole("heading", { name: "Lathe studio" }).waitFor();
  await page.locator("text=Machine").waitFor();
  await screenshot("home");

  step("a bad file is refused with its reason");
  await go("#/datasets/import");
  const bad = join(profile, "broken.parquet");
  writeFileSync(bad, "this is not parquet");
  await page.fill("#ds-name", "broken");
  await page.setInputFiles("#ds-file", bad);
  await page.click("#ds-upload");
  const error = page.locator("p.error");
  await error.filter({ hasText: /\S/ }).waitFor();
  check(/parquet|broken/i.test(await error.textContent()), `bad file message: ${await error.textContent()}`);
  await screenshot("import-error");

  step("import the chat CSV (zip) by upload");
  await page.fill("#ds-name", "chat");
  await page.setInputFiles("#ds-file", dataZip);
  await page.click("#ds-upload");
  await page.waitForURL(/#\/datasets\/chat/);
  await page.locator("table.rows tbody tr").first().waitFor();
  check(await page.locator("text=The mapping passes the checks.").count() === 1, "the mapping is valid");
  await screenshot("dataset-rows");
  await page.getByRole("tab", { name: "Conversations" }).click();
  await page.locator("article.conversation").first().waitFor();
  check(await page.locator(".msg.assistant").count() > 0, "rendered answers");
  await screenshot("dataset-conversations");
  await page.getByRole("tab", { name: "Statistics" }).click();
  await page.locator("figure.chart rect.bin").first().waitFor();
  await screenshot("dataset-statistics");
  await page.getByRole("tab", { name: "Edit" }).click();
  await page.locator("#ds-problem").waitFor();
  await screenshot("dataset-edit");

  step("the settings form follows the schema; a bad setting is refused");
  await go("#/experiments/new?dataset=chat");
  await page.fill("#exp-name", "tiny-a");
  await page.fill("#set-llm_backbone", modelDir);
  const loraRank = page.locator('[data-path="training.lora_r"]');
  check(await loraRank.isVisible(), "LoRA rank shown while LoRA is on");
  await page.uncheck("#set-training-lora");
  check(await loraRank.isHidden(), "LoRA rank hidden when LoRA is off");
  await page.check("#set-training-lora");
  check(await loraRank.isVisible(), "LoRA rank back");
  await page.fill("#set-dataset-data_sample", "0.05");
  await page.fill("#set-tokenizer-max_length", "5");
  await page.fill("#set-training-batch_size", "8");
  await page.fill("#set-training-learning_rate", "0.001");
  await page.fill("#set-training-evaluation_epochs", "0.5");
  await page.selectOption("#set-prediction-metric", "BLEU");
  await page.fill("#set-prediction-max_length_inference", "6");
  await page.selectOption("#set-architecture-backbone_dtype", "float32");
  await page.locator("#exp-estimate").filter({ hasText: "max_length" }).waitFor();
  await page.click("#exp-create");
  await error.filter({ hasText: /max_length/ }).waitFor();
  await screenshot("experiment-form-error");
  await page.fill("#set-tokenizer-max_length", "48");
  await page.locator("#exp-estimate").filter({ hasText: "Estimate: about" }).waitFor();
  await page.click("#exp-create");

  step("the experiment trains; its chart updates live");
  await page.waitForURL(/#\/experiments\/tiny-a/);
  const lossChart = page.locator("#charts figure.chart").first();
  await page.waitForFunction(() => {
    const f = document.querySelector("#charts figure.chart");
    return f && Number(f.dataset.points) > 0;
  });
  const firstPoints = Number(await lossChart.getAttribute("data-points"));
  await page.locator(".badge.s-finished").first().waitFor({ timeout: 180_000 });
  await page.waitForFunction((n) => Number(document.querySelector("#charts figure.chart").dataset.points) >= n, firstPoints);
  const points = Number(await lossChart.getAttribute("data-points"));
  check(points >= 2, `training loss points: ${points}`);
  await lossChart.locator("svg").hover();
  check((await lossChart.locator(".readout").textContent()).includes("train loss"), "value under the cursor");
  await screenshot("experiment-charts");

  step("summary, insights, logs, config");
  await page.getByRole("tab", { name: "Summary" }).click();
  await page.locator("text=Downloads").waitFor();
  check(await page.locator('a[href*="/download/model"]').count() === 1, "model download button");
  await screenshot("experiment-summary");
  await page.getByRole("tab", { name: "Validation insights" }).click();
  await page.locator("table.predictions tbody tr").first().waitFor();
  await page.fill('input[aria-label="Search predictions"]', "zzzz-no-such-text");
  check(await page.locator("table.predictions tbody tr").count() === 0, "search filters predictions");
  await page.fill('input[aria-label="Search predictions"]', "");
  await screenshot("experiment-validation-insights");
  await page.getByRole("tab", { name: "Train data insights" }).click();
  await page.locator(".tok.loss").first().waitFor();
  await screenshot("experiment-train-insights");
  await page.getByRole("tab", { name: "Logs" }).click();
  check(/validation/.test(await page.locator("#log").textContent()), "the log shows validation lines");
  await screenshot("experiment-logs");
  await page.getByRole("tab", { name: "Config" }).click();
  check(/llm_backbone/.test(await page.locator("pre.config").textContent()), "cfg.yaml shown");

  step("chat with the result");
  await page.getByRole("tab", { name: "Chat" }).click();
  await page.fill("#chat-max", "8");
  await page.fill("#chat-input", "Hello, how are you?");
  await page.click("#chat-send");
  await page.locator(".msg.assistant[data-done]").waitFor();
  await screenshot("experiment-chat");
  await page.getByRole("button", { name: "Clear" }).click();
  check(await page.locator(".msg").count() === 0, "chat cleared");

  step("a model download serves a zip");
  const download = await page.request.get(`${url}/api/experiments/tiny-a/download/adapter`);
  check(download.status() === 200 && download.headers()["content-type"] === "application/zip", "adapter zip");

  step("clone into a second experiment with another learning rate");
  await go("#/experiments/new?clone=tiny-a");
  await page.locator('[data-path="training.learning_rate"]').waitFor();
  check(await page.inputValue("#set-llm_backbone") === modelDir, "the clone keeps the backbone");
  await page.fill("#exp-name", "tiny-b");
  await page.fill("#set-training-learning_rate", "0.002");
  await page.click("#exp-create");
  await page.waitForURL(/#\/experiments\/tiny-b/);
  await page.locator(".badge.s-finished").first().waitFor({ timeout: 180_000 });

  step("a failing run shows its reason and log tail");
  await go("#/experiments/new?dataset=chat");
  await page.fill("#exp-name", "broken");
  await page.fill("#set-llm_backbone", "/no/such/model");
  await page.selectOption("#set-prediction-metric", "Perplexity");
  await page.click("#exp-create");
  await page.waitForURL(/#\/experiments\/broken/);
  await page.locator(".status-line .error").filter({ hasText: "no/such/model" }).waitFor({ timeout: 120_000 });
  await page.locator("#failure-tail").filter({ hasText: /\S/ }).waitFor();
  await screenshot("experiment-failed");

  step("grid search mode counts its experiments");
  await go("#/experiments/new?dataset=chat&grid=1");
  await page.locator("input.grid-values").first().waitFor();
  await page.fill('[data-grid="training.learning_rate"]', "0.001, 0.002");
  await page.fill('[data-grid="training.lora_r"]', "2, 4, 8");
  check((await page.textContent("#exp-count")).includes("6 experiments"), "grid count");
  await screenshot("experiment-grid");

  step("the experiments list, compare");
  await go("#/experiments");
  await page.locator("tbody tr").nth(1).waitFor();
  await screenshot("experiments");
  await page.check('input[aria-label="Select tiny-a"]');
  await page.check('input[aria-label="Select tiny-b"]');
  await page.getByRole("button", { name: "Compare" }).click();
  await page.waitForURL(/#\/compare/);
  await page.locator(".legend span").nth(1).waitFor();
  const diff = page.locator("#cmp-settings tbody tr");
  check(await diff.filter({ hasText: "training.learning_rate" }).count() === 1, "learning rate differs");
  check(await diff.filter({ hasText: "training.lora_r" }).count() === 0, "equal settings hidden");
  await page.uncheck("#cmp-diff");
  check(await diff.filter({ hasText: "training.lora_r" }).count() === 1, "all settings shown");
  await screenshot("compare");

  step("settings: a credential is stored masked");
  await go("#/settings");
  await page.fill("#secret-huggingface_token", "hf_example_secret_9876");
  await page.click("#settings-save");
  await page.locator('#secret-huggingface_token[placeholder*="9876"]').waitFor();
  check(!(await page.content()).includes("hf_example_secret_9876"), "the secret is not shown");
  await screenshot("settings");

  step("rename and delete everything");
  await go("#/experiments/tiny-b");
  await page.getByRole("button", { name: "Rename" }).click();
  await page.waitForURL(/#\/experiments\/renamed-b/);
  await go("#/experiments");
  await page.check('input[aria-label="Select tiny-a"]');
  await page.check('input[aria-label="Select renamed-b"]');
  await page.check('input[aria-label="Select broken"]');
  await page.getByRole("button", { name: "Delete" }).click();
  await page.waitForFunction(() => document.querySelectorAll("tbody tr").length === 0);
  await go("#/datasets");
  await page.getByRole("button", { name: "Delete dataset chat" }).click();
  await page.locator("text=No datasets yet").waitFor();
  const left = await (await page.request.get(`${url}/api/experiments`)).json();
  check(left.length === 0, "no experiments left");
  await screenshot("empty");

  step("light and dark");
  await page.click("#theme");
  await go("#/");
  await screenshot("home-other-theme");

  check(problems.length === 0, `browser errors:\n${problems.join("\n")}`);
  console.log("UI end-to-end test passed");
} catch (e) {
  await screenshot("failure").catch(() => {});
  console.error(e.stack || String(e));
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
