/* Strongroom panel core: the session, the API client and small DOM/format helpers.
   Works given only the boot JSON the server injected (a panel session token and the API base URL),
   inside Bitbucket's iframe or opened directly. No cookies, no storage: the token lives in memory. */
"use strict";

const Strongroom = (() => {
  const boot = JSON.parse(document.getElementById("strongroom-boot").textContent);
  let token = boot.token;
  let expired = false;
  const RENEW_MARGIN_S = 120;

  function message(text, tone = "danger") {
    const box = document.getElementById("messages");
    box.textContent = "";
    if (!text) return;
    const p = el("p", { class: `banner banner-${tone}` }, [el("span", { class: "icon", "aria-hidden": "true" }, "!"), text]);
    box.append(p);
  }

  class ApiError extends Error {
    constructor(status, code, text) { super(text); this.status = status; this.code = code; }
  }

  async function api(method, path, body) {
    if (expired) throw new ApiError(401, "session_expired", "The session expired; reload the page.");
    const init = { method, headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
                   credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(boot.api + path, init);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = (data && data.error) || {};
      if (response.status === 401) sessionLost();
      throw new ApiError(response.status, err.code || "error", err.message || `HTTP ${response.status}`);
    }
    return data;
  }

  function sessionLost() {
    expired = true;
    message("Your Strongroom session has ended. Reload the page to continue.");
  }

  async function renew() {
    try {
      const data = await api("POST", "/session");
      token = data.token;
      schedule(data.expires_in);
    } catch (e) {
      if (e.status !== 401) setTimeout(renew, 15000);  // a blip: try again while the old token is valid
    }
  }

  function schedule(expiresIn) {
    // Relative to now, so a skewed browser clock cannot make the page renew too late.
    if (boot.renew) setTimeout(renew, Math.max(5, expiresIn - RENEW_MARGIN_S) * 1000);
  }
  schedule(boot.expires_in);

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of [].concat(children)) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(n < 10 && i ? 1 : 0)} ${units[i]}`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }

  function time(iso) {
    if (!iso) return el("span", {}, "never");
    return el("time", { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
  }

  function cloneCommand(repoSlug, snapshotId, accessToken) {
    // INTERFACE §2.2: {base}/git/{workspace}/{repo}.git and .../{repo}/snapshots/{id}.git
    const base = new URL(boot.git);
    const repo = repoSlug ? encodeURIComponent(repoSlug) : "<repository>";
    const snap = snapshotId ? `/snapshots/${encodeURIComponent(snapshotId)}` : "";
    const path = `${base.pathname.replace(/\/$/, "")}/${encodeURIComponent(boot.workspace.slug)}/${repo}${snap}.git`;
    return `git clone ${base.protocol}//x-token-auth:${accessToken || "<token>"}@${base.host}${path}`;
  }

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
      const old = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = old; }, 1500);
    } catch (e) {
      message("Copying is not allowed here; select the command and copy it by hand.", "warning");
    }
  }

  return { get expired() { return expired; }, get token() { return token; }, boot, api, ApiError, message, el, bytes, ago, time, cloneCommand, copy };
})();
