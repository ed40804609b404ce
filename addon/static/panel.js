/* Strongroom panel views: status strip, protection summary, scope, repositories, snapshot timeline, access.
   Restores, recovery, drills, bundles and the audit log live in panel-restore.js (StrongroomRestore). */
"use strict";

(() => {
  const { boot, api, message, el, bytes, time, cloneCommand, copy } = Strongroom;
  const restore = StrongroomRestore;
  const $ = (id) => document.getElementById(id);
  const PAGELEN = 25, FAST_MS = 3000, SLOW_MS = 15000, STATUS_MS = 30000, SNAP_PAGE = 20;
  const state = { page: 1, q: "", filter: "", size: 0, rows: [], open: null, snapsShown: SNAP_PAGE,
                  snapshots: [], snapshotTotal: 0, accessToken: null, jobs: new Map(), overview: null, timer: null };
  const TRIGGERS = { push: "after a push", sweep: "scheduled check", manual: "manual backup", install: "first backup" };

  // --- states: text and an icon, never colour alone ---------------------------------------------
  function repoState(r) {
    if (r.deleted_upstream) return ["deleted", "⌫", "Deleted on Bitbucket (backups kept)"];
    if (!r.in_scope) return ["out", "○", "Not backed up"];
    if (state.jobs.has(r.uuid) || r.state === "syncing") return ["syncing", "⟳", "Backing up…"];
    if (r.state === "ok") return ["ok", "✓", "Protected"];
    if (r.state === "failing") return ["failing", "✕", "Failing"];
    return ["pending", "…", "Waiting for first backup"];
  }

  function row(r) {
    const [key, icon, text] = repoState(r);
    const name = r.full_name || r.slug;
    const toggle = el("input", { type: "checkbox", role: "switch", class: "switch", "aria-label": `Back up ${name}`,
                                 checked: r.in_scope, dataset: { key: `sw-${r.uuid}` } });
    toggle.addEventListener("change", () => setScope(r, toggle));
    const open = el("button", { type: "button", class: "link", "aria-controls": "timeline",
                                dataset: { key: `open-${r.uuid}` } },
                    [r.slug, el("span", { class: "visually-hidden" }, " – show snapshots")]);
    open.addEventListener("click", () => openTimeline(r));
    const now = el("button", { type: "button", class: "button", "aria-label": `Back up ${name} now`,
                               disabled: !r.in_scope || r.deleted_upstream || state.jobs.has(r.uuid),
                               dataset: { key: `now-${r.uuid}` } }, "Back up now");
    now.addEventListener("click", () => backupRepository(r));
    const stateCell = [el("span", { class: "state", "data-state": key }, [el("span", { class: "icon", "aria-hidden": "true" }, icon), ` ${text}`])];
    if (r.last_error && key === "failing") stateCell.push(el("span", { class: "reason" }, r.last_error));
    return el("tr", { dataset: { uuid: r.uuid, slug: r.slug } }, [
      el("td", {}, el("label", { class: "switch-label" }, [toggle, el("span", { "aria-hidden": "true" }, r.in_scope ? "On" : "Off")])),
      el("th", { scope: "row" }, [open, el("div", { class: "subtle small" }, name)]),
      el("td", {}, stateCell),
      el("td", {}, time(r.last_backup_at)),
      el("td", { class: "num" }, String(r.snapshot_count)),
      el("td", { class: "num" }, bytes(r.size_bytes)),
      el("td", {}, restore.verificationCell(r)),
      el("td", {}, now),
    ]);
  }

  function renderRows() {
    const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
    const body = $("repo-rows");
    body.replaceChildren(...state.rows.map(row));
    $("repo-empty").hidden = state.rows.length > 0;
    if (focused) { const again = body.querySelector(`[data-key="${CSS.escape(focused)}"]`); if (again) again.focus(); }
    const first = (state.page - 1) * PAGELEN;
    $("page-info").textContent = state.size ? `${first + 1}–${first + state.rows.length} of ${state.size}` : "";
    $("page-prev").disabled = state.page <= 1;
    $("page-next").disabled = first + state.rows.length >= state.size;
    $("clone-repo-options").replaceChildren(...state.rows.map((r) => el("option", { value: r.slug })));
    if (!$("clone-repo").value && state.rows.length) { $("clone-repo").value = state.rows[0].slug; updateCommands(); }
  }

  async function loadRepositories() {
    if (boot.view === "repository") {
      try {
        state.rows = [await api("GET", `/repositories/${encodeURIComponent(boot.repository)}`)];
      } catch (e) {
        if (e.status !== 404) throw e;
        state.rows = [];
        $("repo-empty").textContent = "Strongroom has not seen this repository yet; it appears after the next inventory.";
      }
      state.size = state.rows.length;
    } else {
      const params = new URLSearchParams({ page: state.page, pagelen: PAGELEN });
      if (state.q) params.set("q", state.q);
      if (state.filter) params.set("state", state.filter);
      const data = await api("GET", `/repositories?${params}`);
      state.rows = data.values; state.size = data.size;
      if (!state.rows.length && state.page > 1) { state.page = 1; return loadRepositories(); }
    }
    renderRows();
    if (boot.view === "repository" && state.rows.length && !state.open) openTimeline(state.rows[0], false);
  }

  // --- actions ------------------------------------------------------------------------------------
  async function setScope(r, toggle) {
    toggle.disabled = true;
    try {
      await api("PUT", `/repositories/${encodeURIComponent(r.uuid)}/scope`, { in_scope: toggle.checked });
      message("");
      restore.loadAudit();
    } catch (e) {
      toggle.checked = !toggle.checked;
      message(`Could not change ${r.slug}: ${e.message}`);
    }
    await refresh();
  }

  async function backupRepository(r) {
    try {
      const data = await api("POST", `/repositories/${encodeURIComponent(r.uuid)}/backups`);
      state.jobs.set(r.uuid, data.job.id);
      message("");
    } catch (e) { message(`Could not back up ${r.slug}: ${e.message}`); }
    renderRows();
    schedule(FAST_MS);
  }

  async function backupAll() {
    try { await api("POST", "/backups"); message(""); } catch (e) { message(`Could not start a backup: ${e.message}`); }
    await refresh();
  }

  async function setMode(mode) {
    try { await api("PUT", "/scope", { mode }); message(""); restore.loadAudit(); } catch (e) { message(`Could not change the scope: ${e.message}`); }
    await refresh();
  }

  async function trackJobs() {
    for (const [uuid, id] of [...state.jobs]) {
      const job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
      if (job.state === "succeeded" || job.state === "failed") {
        state.jobs.delete(uuid);
        if (job.state === "failed") message(`A backup failed: ${job.error || "see the repository's state"}`);
      }
    }
  }

  // --- overview and progress ----------------------------------------------------------------------
  function renderOverview(o) {
    const s = o.states;
    let tone = "success", icon = "✓", text = o.in_scope === 1 ? "The 1 repository in scope is protected."
      : `All ${o.in_scope} repositories in scope are protected.`;
    if (!o.connected) { tone = "warning"; icon = "!"; text = "The workspace is not connected; existing backups stay readable and clonable."; }
    else if (!o.in_scope && o.deleted_upstream) { tone = "warning"; icon = "!"; text = `Nothing left to back up: ${o.deleted_upstream === 1 ? "the repository was" : `${o.deleted_upstream} repositories were`} deleted on Bitbucket. Their backups are kept; recover them below.`; }
    else if (!o.in_scope) { tone = "neutral"; icon = "○"; text = "No repositories are selected for backup."; }
    else if (s.failing) { tone = "danger"; icon = "✕"; text = `${s.failing} of ${o.in_scope} repositories are failing; see the reasons below.`; }
    else if (!o.protected) { tone = "information"; icon = "⟳"; text = `${s.ok} of ${o.in_scope} repositories are protected; ${s.pending + s.syncing} are being backed up.`; }
    const summary = $("summary-text");
    summary.dataset.tone = tone;
    summary.replaceChildren(el("span", { class: "icon", "aria-hidden": "true" }, icon), el("span", { class: "text" }, text));
    const counts = [["Protected", s.ok], ["Backing up", s.syncing], ["Waiting", s.pending], ["Failing", s.failing],
                    ["Not backed up", o.out_of_scope], ["Deleted on Bitbucket", o.deleted_upstream], ["Space used", bytes(o.size_bytes)]];
    $("summary-counts").replaceChildren(...counts.map(([k, v]) => el("li", {}, [el("span", { class: "subtle" }, `${k}: `), el("strong", {}, String(v))])));
    $(`scope-${o.scope_mode}`).checked = true;
    const job = o.latest_job, active = job && (job.state === "queued" || job.state === "running");
    $("progress").hidden = !active;
    if (active) {
      const { done, total } = job.progress;
      $("progress-label").textContent = s.ok ? "Backup in progress" : "First backup in progress";
      $("progress-bar").max = Math.max(total, 1);
      $("progress-bar").value = done;
      $("progress-text").textContent = job.state === "queued" ? "Planning the backup…"
        : `${done} of ${total} repositories · ${bytes(o.size_bytes)} backed up`;
    }
  }

  // --- snapshot timeline --------------------------------------------------------------------------
  function short(sha) { return sha ? sha.slice(0, 10) : ""; }

  function change(ref, [before, after]) {
    const what = before && after ? ["moved ", el("code", {}, short(before)), " → ", el("code", {}, short(after))]
      : after ? ["created at ", el("code", {}, short(after))] : ["deleted (was ", el("code", {}, short(before)), ")"];
    return el("li", {}, [el("code", {}, ref), " ", ...what]);
  }

  function snapshotActions(snap) {
    const repo = state.open, when = new Date(snap.taken_at).toLocaleString();
    const restoreButton = el("button", { type: "button", class: "button", "aria-controls": "restore",
                                         "aria-label": `Restore… from the snapshot of ${when}` }, "Restore…");
    restoreButton.addEventListener("click", () => restore.open(repo, snap, () => refresh().catch(() => {})));
    const bundle = el("button", { type: "button", class: "button", "aria-label": `Download bundle of the snapshot of ${when}` },
                      "Download bundle");
    bundle.addEventListener("click", () => restore.download(repo, snap, bundle));
    return el("p", { class: "actions" }, [restoreButton, " ", bundle]);
  }

  function snapshotItem(snap) {
    const refs = Object.entries(snap.changes || {});
    const shown = refs.slice(0, 12).map(([ref, pair]) => change(ref, pair));
    if (refs.length > 12) shown.push(el("li", { class: "subtle" }, `and ${refs.length - 12} more refs`));
    return el("li", { class: "snapshot", dataset: { id: snap.id } }, [
      el("h3", {}, [time(snap.taken_at), ` · ${TRIGGERS[snap.trigger] || snap.trigger}`]),
      refs.length ? el("ul", { class: "changes", "aria-label": "Refs that changed" }, shown) : el("p", { class: "subtle" }, "No ref changes."),
      el("p", { class: "small subtle" }, [`${Object.keys(snap.refs).length} refs · snapshot `, el("code", {}, snap.id)]),
      el("pre", { class: "command" }, el("code", { class: "clone-cmd" }, cloneCommand(state.open.slug, snap.id, state.accessToken))),
      snapshotActions(snap),
    ]);
  }

  function renderTimeline() {
    $("snapshot-list").replaceChildren(...state.snapshots.map(snapshotItem));
    $("snapshot-empty").hidden = state.snapshots.length > 0;
    $("snapshot-more").hidden = state.snapshots.length >= state.snapshotTotal;
    $("clone-latest").textContent = cloneCommand(state.open.slug, null, state.accessToken);
  }

  async function loadTimeline() {
    if (!state.open) return;
    const data = await api("GET", `/repositories/${encodeURIComponent(state.open.uuid)}/snapshots?pagelen=${Math.min(state.snapsShown, 100)}`);
    state.snapshots = data.values; state.snapshotTotal = data.size;
    renderTimeline();
  }

  async function openTimeline(r, focus = true) {
    state.open = r; state.snapsShown = SNAP_PAGE; state.snapshots = []; state.snapshotTotal = 0;
    $("timeline").hidden = false;
    $("timeline-title").textContent = `Snapshots of ${r.full_name || r.slug}`;
    restore.showVerification(r);
    restore.close();  // a restore belongs to the repository whose snapshots were open
    $("clone-repo").value = r.slug; updateCommands();
    try { await loadTimeline(); } catch (e) { message(`Could not load snapshots: ${e.message}`); }
    if (focus) $("timeline-title").focus();
  }

  // --- access tokens ------------------------------------------------------------------------------
  function updateCommands() {
    $("clone-command").textContent = cloneCommand($("clone-repo").value.trim(), null, state.accessToken);
    if (state.open) renderTimeline();
  }

  async function loadTokens() {
    const data = await api("GET", "/access-tokens");
    const now = Date.now();
    $("token-rows").replaceChildren(...data.values.map((t) => {
      const dead = t.revoked_at ? "Revoked" : (t.expires_at && Date.parse(t.expires_at) < now ? "Expired" : "Active");
      const revoke = el("button", { type: "button", class: "button", disabled: dead !== "Active",
                                    "aria-label": `Revoke token ${t.label || t.id}` }, "Revoke");
      revoke.addEventListener("click", async () => {
        try { await api("DELETE", `/access-tokens/${encodeURIComponent(t.id)}`); } catch (e) { message(`Could not revoke: ${e.message}`); }
        loadTokens();
        restore.loadAudit();
      });
      return el("tr", {}, [el("th", { scope: "row" }, t.label || t.id), el("td", {}, time(t.created_at)),
        el("td", {}, t.expires_at ? new Date(t.expires_at).toLocaleDateString() : "never"), el("td", {}, time(t.last_used_at)),
        el("td", {}, dead), el("td", {}, revoke)]);
    }));
    $("token-empty").hidden = data.values.length > 0;
  }

  async function createToken(event) {
    event.preventDefault();
    try {
      const issued = await api("POST", "/access-tokens", { label: $("token-label").value, expires_in_days: Number($("token-days").value) });
      state.accessToken = issued.token;  // kept in memory only, for the commands on this page
      $("token-value").textContent = issued.token;
      $("token-once").hidden = false;
      $("token-label").value = "";
      message("");
      updateCommands();
      await loadTokens();
      restore.loadAudit();
    } catch (e) { message(`Could not create a token: ${e.message}`); }
  }

  // --- is Bitbucket down? -------------------------------------------------------------------------
  async function loadStatus() {
    let st;
    try { st = await api("GET", "/status"); } catch (e) { return; }
    const strip = $("status-strip");
    const down = st.bitbucket_down === true;
    const refused = [st.api.state, st.git.state].includes("refused");
    const [tone, icon, text] = down ? ["danger", "✕", "Bitbucket is unreachable right now. Your backups are safe: clone them from Strongroom."]
      : refused ? ["warning", "!", "Bitbucket answers, but refuses Strongroom's credentials; backups cannot be refreshed."]
      : st.bitbucket_down === false ? ["success", "✓", "Bitbucket is reachable (REST API and git)."]
      : ["neutral", "?", "Strongroom cannot tell whether Bitbucket is reachable."];
    strip.className = `banner banner-${tone}`;
    strip.dataset.state = down ? "down" : (st.bitbucket_down === false ? "up" : "unknown");
    strip.querySelector(".icon").textContent = icon;
    $("status-text").replaceChildren(el("strong", {}, text));
    $("status-detail").textContent = `API: ${st.api.detail}. Git: ${st.git.detail}. Checked ${new Date(st.checked_at).toLocaleTimeString()}.`;
    // When Bitbucket is down, what people need first is how to clone from the backup.
    const main = $("main"), access = $("access");
    $("down-steps").hidden = !down;
    if (down && strip.nextElementSibling !== access) main.insertBefore(access, strip.nextElementSibling);
    if (!down && main.lastElementChild !== access) main.append(access);
  }

  // --- refresh loop -------------------------------------------------------------------------------
  function busy() {
    const o = state.overview, job = o && o.latest_job;
    return state.jobs.size > 0 || state.rows.some((r) => r.state === "syncing" || (r.in_scope && r.state === "pending" && !r.deleted_upstream))
      || (job && (job.state === "queued" || job.state === "running"));
  }

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(tick, ms);
  }

  async function refresh() {
    await trackJobs();
    if (boot.view !== "repository") { state.overview = await api("GET", "/overview"); renderOverview(state.overview); }
    await loadRepositories();
    if (state.open) {
      const fresh = state.rows.find((r) => r.uuid === state.open.uuid);
      if (fresh) { state.open = fresh; restore.showVerification(fresh); }
      await loadTimeline();
    }
  }

  async function tick() {
    try { await refresh(); } catch (e) { if (e.status !== 401) message(`Could not refresh: ${e.message}`, "warning"); }
    if (!Strongroom.expired) schedule(busy() ? FAST_MS : SLOW_MS);
  }

  function wire() {
    if (boot.view === "repository") document.querySelectorAll("[data-workspace-only]").forEach((n) => { n.hidden = true; });
    let debounce;
    $("repo-q").addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => { state.q = $("repo-q").value.trim(); state.page = 1; tick(); }, 250); });
    $("repo-filter").addEventListener("submit", (e) => e.preventDefault());
    $("repo-state").addEventListener("change", () => { state.filter = $("repo-state").value; state.page = 1; tick(); });
    $("page-prev").addEventListener("click", () => { state.page -= 1; tick(); });
    $("page-next").addEventListener("click", () => { state.page += 1; tick(); });
    document.querySelectorAll('input[name="scope-mode"]').forEach((r) => r.addEventListener("change", () => setMode(r.value)));
    $("backup-all").addEventListener("click", backupAll);
    $("timeline-close").addEventListener("click", () => { state.open = null; $("timeline").hidden = true; restore.close(); $("repositories").focus(); });
    $("verify-now").addEventListener("click", () => state.open && restore.verifyNow(state.open, () => refresh().catch(() => {})));
    $("snapshot-more").addEventListener("click", () => { state.snapsShown += SNAP_PAGE; loadTimeline(); });
    $("token-form").addEventListener("submit", createToken);
    $("clone-repo").addEventListener("input", updateCommands);
    $("clone-copy").addEventListener("click", () => copy($("clone-command").textContent, $("clone-copy")));
    updateCommands();
  }

  wire();
  tick();
  loadTokens().catch((e) => message(`Could not load tokens: ${e.message}`));
  loadStatus();
  setInterval(loadStatus, STATUS_MS);
})();
