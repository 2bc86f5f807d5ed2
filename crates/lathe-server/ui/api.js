// The studio API: JSON calls, uploads with progress, and server-sent event streams
// (over fetch, so that POST bodies and the token header work).

const TOKEN_KEY = "lathe-token";

function headers(extra = {}) {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

/** An API error: the server's `{"error": …}` message and status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error) message = body.error;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    const token = prompt("This studio needs its token:");
    if (token) localStorage.setItem(TOKEN_KEY, token);
  }
  return new ApiError(response.status, message);
}

/** `method path` with an optional JSON body; resolves to the JSON answer (or null). */
export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => call("GET", path);

/** Uploads `file` as dataset `name`; `onProgress(fraction)` while it goes. */
export function upload(name, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const q = new URLSearchParams({ name, filename: file.name });
    xhr.open("POST", `/api/datasets/upload?${q}`);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* empty */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && body.error) || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new ApiError(0, "the upload could not reach the studio"));
    xhr.send(file);
  });
}

/**
 * Reads a server-sent event stream; `onEvent(name, data)` per event. Returns an
 * AbortController that ends it. `body` makes it a POST with that JSON.
 */
export function stream(path, onEvent, body, onEnd) {
  const controller = new AbortController();
  const init = { method: body ? "POST" : "GET", signal: controller.signal,
    headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  (async () => {
    const response = await fetch(path, init);
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(name, data.join("\n"));
      }
    }
  })().then(() => onEnd && onEnd(null), (e) => {
    if (e.name !== "AbortError") (onEnd ? onEnd(e) : console.error(e));
  });
  return controller;
}

/** The address of a download, with the token when one is set. */
export function downloadUrl(path) {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
}
