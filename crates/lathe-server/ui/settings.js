// Settings: credentials (stored as secrets, never shown in full) and app defaults.

import { call, get } from "./api.js";
import { h, toast } from "./dom.js";

const SECRET_LABELS = {
  huggingface_token: "Hugging Face token",
  openai_api_key: "OpenAI API key",
  aws_access_key: "AWS access key",
  aws_secret_key: "AWS secret key",
};

export async function settingsPage(page) {
  const current = await get("/api/settings");
  const secretInputs = {};
  const settingInputs = {};
  const error = h("p.error", { role: "alert" });
  page.append(h("h1", {}, "Settings"),
    h("section.card", {}, h("h2", {}, "Credentials"),
      h("p.muted", {}, "Stored in the workspace's secrets file (readable by its owner only) and passed to training workers as environment variables."),
      Object.entries(current.secrets).map(([key, masked]) => {
        const id = `secret-${key}`;
        secretInputs[key] = h("input", { id, type: "password", autocomplete: "off", placeholder: masked ? `set (${masked})` : "not set" });
        return h("div.field", {}, h("label", { for: id }, SECRET_LABELS[key] || key), secretInputs[key]);
      })),
    h("section.card", {}, h("h2", {}, "Defaults and limits"),
      Object.entries(current.settings).map(([key, { value, help }]) => {
        const id = `setting-${key}`;
        const input = typeof value === "boolean"
          ? h("input", { id, type: "checkbox", checked: value })
          : h("input", { id, type: typeof value === "number" ? "number" : "text", value });
        settingInputs[key] = input;
        return h("div.field", {}, h("label", { for: id }, key.replace(/_/g, " ")), input, h("small.help", {}, help));
      })),
    error,
    h("button#settings-save", { type: "button", onclick: async () => {
      const secrets = {};
      for (const [k, el] of Object.entries(secretInputs)) if (el.value) secrets[k] = el.value;
      const settings = {};
      for (const [k, el] of Object.entries(settingInputs)) {
        settings[k] = el.type === "checkbox" ? el.checked : el.type === "number" ? Number(el.value) : el.value;
      }
      try {
        await call("PUT", "/api/settings", { settings, secrets });
        toast("Settings saved");
        page.replaceChildren();
        await settingsPage(page);
      } catch (e) { error.textContent = e.message; }
    } }, "Save"));
}
