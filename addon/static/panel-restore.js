/* Strongroom panel: restores, workspace recovery, verification drills, bundle downloads and the audit log.
   Every change to Bitbucket goes plan first (a dry run), then an explicit confirmation, then a job whose
   progress is polled. A plan is only confirmable while the form still says what was planned. */
"use strict";

const StrongroomRestore = (() => {
  const { boot, api, message, el, time } = Strongroom;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1500, AUDIT_PAGELEN = 20;
  const DONE = new Set(["succeeded", "failed"]);
  const ACTIONS = { create: "Create", update: "Move", skip: "Skip" };
  const restore = { repo: null, snap: null, planned: null, onDone: null };
  const recovery = { planned: null };
  const audit = { page: 1, size: 0, seq: 0 };

  const short = (sha) => (sha ? sha.slice(0, 10) : "");
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const radio = (name) => document.querySelector(`input[name="${name}"]:checked`).value;

  function counts(plan) {
    const c = { create: 0, update: 0, skip: 0 };
    for (const line of plan) c[line.action] = (c[line.action] || 0) + 1;
    return c;
  }

  function countsText(c) {
    const parts = [];
    if (c.create) parts.push(`${plural(c.create, "ref", "refs")} created`);
    if (c.update) parts.push(`${plural(c.update, "ref", "refs")} moved`);
    if (c.skip) parts.push(`${plural(c.skip, "ref", "refs")} skipped`);
    return parts.join(", ") || "nothing to do";
  }

  // --- jobs ---------------------------------------------------------------------------------------
  async function poll(jobId, onUpdate) {
    for (;;) {
      let job;
      try { job = await api("GET", `/jobs/${encodeURIComponent(jobId)}`); } catch (e) {
        if (e.status === 401) return null;
        await new Promise((r) => setTimeout(r, POLL_MS * 2));  // a blip: keep following the job
        continue;
      }
      onUpdate(job);
      if (DONE.has(job.state)) return job;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  // --- plans: a dry run of exactly the request that confirming sends --------------------------------
  async function showPlan(flow, path, makeBody, render, memory) {
    $(`${flow}-preview`).disabled = true;
    try {
      const answer = await api("POST", path, makeBody(true));
      message("");
      memory.planned = JSON.stringify(makeBody(false));  // only this request can be confirmed
      render(answer);
      $(`${flow}-job`).hidden = true;
      $(`${flow}-job-status`).textContent = "";
      $(`${flow}-plan-title`).focus();
    } catch (e) {
      message(`Could not plan the ${flow}: ${e.message}`);
    } finally {
      $(`${flow}-preview`).disabled = false;
    }
  }

  // Confirm: send the planned request for real (only if the form still says what was planned); the
  // answer is rendered and its job section shown. Null if nothing was started.
  async function startPlanned(flow, path, body, memory, render, withdraw) {
    if (!memory.planned || memory.planned !== JSON.stringify(body)) { withdraw(); return null; }
    $(`${flow}-confirm`).disabled = true;
    $(`${flow}-preview`).disabled = true;
    let answer;
    try {
      answer = await api("POST", path, body);
    } catch (e) {
      message(`Could not start the ${flow}: ${e.message}`);
      $(`${flow}-preview`).disabled = false;
      return null;
    }
    message("");
    loadAudit();
    memory.planned = null;
    render(answer);
    $(`${flow}-confirm`).disabled = true;
    $(`${flow}-job`).hidden = false;
    return answer;
  }

  // --- restore one repository ---------------------------------------------------------------------
  function refItem([ref, sha], index) {
    const id = `restore-ref-${index}`;  // ref names may hold any character; the index is unique
    return el("label", { class: "ref", for: id }, [
      el("input", { type: "checkbox", id, value: ref, checked: true, name: "restore-ref" }),
      el("code", {}, ref), el("span", { class: "subtle small" }, ` ${short(sha)}`)]);
  }

  function open(repo, snap, onDone) {
    Object.assign(restore, { repo, snap, planned: null, onDone });
    const refs = Object.entries(snap.refs).sort(([a], [b]) => a.localeCompare(b));
    $("restore").hidden = false;
    $("restore-title").textContent = `Restore ${repo.full_name || repo.slug}`;
    $("restore-source").replaceChildren(`From the snapshot taken `, time(snap.taken_at),
      ` (${new Date(snap.taken_at).toLocaleString()}, `, el("code", {}, snap.id), `, ${plural(refs.length, "ref", "refs")}).`);
    const gone = !!repo.deleted_upstream;
    $("restore-same").disabled = gone;
    $(gone ? "restore-new" : "restore-same").checked = true;
    $("restore-same").parentElement.title = gone ? "The repository was deleted on Bitbucket" : "";
    $("restore-new-names").checked = true;
    $("restore-name").value = repo.slug;
    $("restore-refs").replaceChildren(...refs.map(refItem));
    $("restore-preview").disabled = false;
    $("restore-plan").hidden = true;
    $("restore-job").hidden = true;
    formChanged();
    $("restore-title").focus();
  }

  function close() {
    restore.repo = null;
    $("restore").hidden = true;
  }

  function chosenRefs() {
    const boxes = [...document.querySelectorAll('input[name="restore-ref"]')];
    const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
    return chosen.length === boxes.length ? null : chosen;  // null: every ref of the snapshot
  }

  function restoreBody(dryRun) {
    const kind = radio("restore-kind");
    const body = { snapshot_id: restore.snap.id, target: { kind }, dry_run: dryRun };
    if (kind === "new") body.target.name = $("restore-name").value.trim();
    else body.mode = radio("restore-mode");
    const refs = chosenRefs();
    if (refs) body.refs = refs;
    return body;
  }

  function formChanged() {
    const kind = radio("restore-kind");
    $("restore-name-field").hidden = kind !== "new";
    $("restore-mode-group").hidden = kind !== "same";
    if (restore.planned) {  // the plan on screen no longer describes the form: plan again before confirming
      restore.planned = null;
      $("restore-plan").hidden = true;
    }
  }

  function settingsText(settings) {
    const parts = [settings.is_private === false ? "public" : "private"];
    if (settings.project) parts.push(`project ${settings.project.key}${settings.project.confirmed === false ? " (if it still exists)" : ""}`);
    if (settings.mainbranch) parts.push(`main branch ${settings.mainbranch} (pushed first)`);
    if (settings.language) parts.push(`language ${settings.language}`);
    if (settings.description) parts.push(`description “${settings.description}”`);
    return parts.join(", ");
  }

  function warningList(warnings) {
    return (warnings || []).map((w) => el("li", {}, [el("span", { class: "icon", "aria-hidden": "true" }, "! "), w]));
  }

  function renderRestorePlan(answer) {
    const c = counts(answer.plan);
    const into = answer.target.kind === "new" ? `the new repository ${answer.target.full_name}` : answer.target.full_name;
    $("restore-plan-summary").textContent = `Into ${into}: ${countsText(c)}.`;
    $("restore-plan-settings").hidden = !answer.settings;
    $("restore-plan-settings").textContent = answer.settings ? `The new repository gets the original's settings: ${settingsText(answer.settings)}.` : "";
    $("restore-plan-warnings").replaceChildren(...warningList(answer.warnings));
    $("restore-plan-warnings").hidden = !(answer.warnings || []).length;
    $("restore-plan-rows").replaceChildren(...answer.plan.map((line) => el("tr", { dataset: { action: line.action } }, [
      el("th", { scope: "row" }, el("code", {}, line.ref)),
      el("td", {}, line.reason ? `${ACTIONS[line.action]}: ${line.reason}` : ACTIONS[line.action]),
      el("td", {}, el("code", {}, line.target_ref)),
      el("td", {}, [line.from ? el("code", {}, short(line.from)) : "new", " → ", el("code", {}, short(line.to))]),
    ])));
    const work = c.create + c.update > 0 || answer.target.kind === "new";
    $("restore-confirm").disabled = !work;
    $("restore-confirm").textContent = work ? "Restore now" : "Nothing to restore";
    $("restore-plan").hidden = false;
  }

  async function preview(event) {
    event.preventDefault();
    if (!restore.repo) return;
    const boxes = document.querySelectorAll('input[name="restore-ref"]:checked');
    if (!boxes.length) { message("Choose at least one ref to restore."); return; }
    await showPlan("restore", `/repositories/${encodeURIComponent(restore.repo.uuid)}/restores`, restoreBody,
                   renderRestorePlan, restore);
  }

  async function confirmRestore() {
    // What is being done is planned again against Bitbucket's refs of this moment, and shown.
    const answer = await startPlanned("restore", `/repositories/${encodeURIComponent(restore.repo.uuid)}/restores`,
                                      restoreBody(false), restore, renderRestorePlan, formChanged);
    if (!answer) return;
    const status = $("restore-job-status");
    status.textContent = "Starting…";
    delete status.dataset.state;
    const target = answer.target.full_name, summary = countsText(counts(answer.plan));
    const job = await poll(answer.job.id, (j) => {
      status.textContent = j.state === "queued" ? "Waiting for a worker…" : j.state === "running" ? `Restoring into ${target}…` : "";
    });
    $("restore-preview").disabled = false;
    if (!job) return;
    const item = (job.items || [])[0] || {};
    if (job.state === "succeeded") {
      const warned = (item.warnings || []).length ? ` Not everything came back: ${item.warnings.join("; ")}.` : "";
      status.textContent = `Restored into ${target} (${summary}); Bitbucket's refs were checked against the snapshot.${warned}`;
    } else {
      status.textContent = `The restore failed: ${item.error || job.error || "see the audit log"}. Nothing was deleted.`;
    }
    status.dataset.state = job.state;
    if (restore.onDone) restore.onDone(job);
  }

  // --- workspace recovery -------------------------------------------------------------------------
  function recoveryBody(dryRun) {
    const body = { repositories: $("recovery-which").value, dry_run: dryRun };
    const at = $("recovery-at").value;
    if (at) body.at = new Date(at).toISOString();  // the input is the browser's local time
    return body;
  }

  function refsText(entry) {
    if (entry.action === "skip") return "";
    return countsText(counts(entry.plan || []));
  }

  function renderRecoveryPlan(answer) {
    const busy = answer.plan.filter((e) => e.action === "restore");
    $("recovery-plan-summary").textContent = answer.plan.length
      ? `${plural(busy.length, "repository", "repositories")} to restore, ${answer.plan.length - busy.length} skipped.`
      : "No repository matches: nothing to recover.";
    $("recovery-plan-rows").replaceChildren(...answer.plan.map((e) => el("tr", { dataset: { action: e.action } }, [
      el("th", { scope: "row" }, e.repository.full_name || e.repository.slug),
      el("td", {}, e.action === "restore" ? "Restore" : `Skip: ${e.reason || ""}`),
      el("td", {}, e.target ? [`${e.target.full_name}${e.target.kind === "new" ? " (recreated)" : ""}`,
        e.settings ? el("div", { class: "subtle small" }, settingsText(e.settings)) : "",
        (e.warnings || []).length ? el("ul", { class: "warnings small" }, warningList(e.warnings)) : ""] : ""),
      el("td", {}, e.snapshot ? [time(e.snapshot.taken_at), " ", el("code", { class: "small" }, e.snapshot.id)] : ""),
      el("td", {}, refsText(e)),
    ])));
    $("recovery-confirm").disabled = busy.length === 0;
    $("recovery-plan").hidden = false;
  }

  async function previewRecovery(event) {
    event.preventDefault();
    await showPlan("recovery", "/recoveries", recoveryBody, renderRecoveryPlan, recovery);
  }

  function renderRecoveryJob(job) {
    const { done, total } = job.progress;
    const failed = (job.items || []).filter((i) => i.state === "failed").length;
    $("recovery-job-bar").max = Math.max(total, 1);
    $("recovery-job-bar").value = done;
    $("recovery-job-status").textContent = job.state === "queued" ? "Waiting for a worker…"
      : job.state === "running" ? `${done} of ${total} repositories done${failed ? `, ${failed} failed` : ""}…`
      : job.state === "succeeded" ? `Recovered all ${plural(total, "repository", "repositories")}.`
      : `${total - failed} of ${total} repositories recovered; ${failed} failed (the others were not held up).`;
    $("recovery-job-status").dataset.state = job.state;
    $("recovery-job-rows").replaceChildren(...(job.items || []).map((i) => el("tr", { dataset: { state: i.state } }, [
      el("th", { scope: "row" }, i.repository.slug),
      el("td", {}, { pending: "Waiting", running: "Restoring…", done: "Restored", failed: "Failed" }[i.state] || i.state),
      el("td", { class: "num" }, String(i.attempts || 0)),
      el("td", {}, [i.error ? el("span", { class: "reason" }, i.error) : "",
        (i.warnings || []).length ? el("ul", { class: "warnings small" }, warningList(i.warnings)) : ""]),
    ])));
  }

  async function confirmRecovery() {
    const answer = await startPlanned("recovery", "/recoveries", recoveryBody(false), recovery, renderRecoveryPlan,
                                      invalidateRecovery);
    if (!answer) return;
    await poll(answer.job.id, renderRecoveryJob);
    $("recovery-preview").disabled = false;
    loadAudit();
  }

  function invalidateRecovery() {
    recovery.planned = null;
    $("recovery-plan").hidden = true;
  }

  // --- verification drills -------------------------------------------------------------------------
  function verification(repo) {
    if (!repo.last_verified_at) return ["none", "○", "Not verified yet"];
    if (repo.last_verify_ok) return ["ok", "✓", "Proven restorable"];
    return ["failing", "✕", "Verification failed"];
  }

  function verificationCell(repo) {
    const [key, icon, text] = verification(repo);
    const out = [el("span", { class: "state", "data-state": key }, [el("span", { class: "icon", "aria-hidden": "true" }, icon), ` ${text}`])];
    if (repo.last_verified_at) out.push(el("div", { class: "subtle small" }, time(repo.last_verified_at)));
    if (key === "failing" && repo.last_verify_error) out.push(el("span", { class: "reason" }, repo.last_verify_error));
    return out;
  }

  function showVerification(repo) {
    const [key, , text] = verification(repo);
    const status = $("verify-status");
    status.dataset.state = key;
    status.replaceChildren(...(repo.last_verified_at
      ? [`${text}: last verification drill `, time(repo.last_verified_at),
         key === "failing" && repo.last_verify_error ? ` (${repo.last_verify_error})` : "", "."]
      : ["Not verified yet: a drill restores the latest snapshot into a scratch repository, runs git fsck and compares every ref."]));
    $("verify-now").disabled = !repo.snapshot_count;
  }

  async function verifyNow(repo, onDone) {
    const button = $("verify-now"), status = $("verify-status");
    button.disabled = true;
    let answer;
    try {
      answer = await api("POST", `/repositories/${encodeURIComponent(repo.uuid)}/drills`, {});
    } catch (e) {
      message(`Could not start a verification of ${repo.slug}: ${e.message}`);
      button.disabled = false;
      return;
    }
    loadAudit();
    status.textContent = "Verifying: restoring the latest snapshot into a scratch repository…";
    await poll(answer.job.id, () => {});
    try {
      const fresh = await api("GET", `/repositories/${encodeURIComponent(repo.uuid)}`);
      showVerification(fresh);
      if (onDone) onDone(fresh);
    } catch (e) { message(`Could not reload ${repo.slug}: ${e.message}`); }
    button.disabled = false;
    loadAudit();
  }

  // --- bundle download: fetched with the session token, handed to the browser as a file -------------
  async function download(repo, snap, button) {
    const old = button.textContent;
    button.disabled = true;
    button.textContent = "Preparing bundle…";
    try {
      const response = await fetch(`${boot.api}/repositories/${encodeURIComponent(repo.uuid)}/snapshots/${encodeURIComponent(snap.id)}/bundle`,
        { headers: { Authorization: `Bearer ${Strongroom.token}` }, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
      }
      const blob = await response.blob();
      const link = el("a", { href: URL.createObjectURL(blob), download: `${repo.slug}-${snap.id}.bundle` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      message("");
    } catch (e) {
      message(`Could not download the bundle: ${e.message}`);
    } finally {
      button.disabled = false;
      button.textContent = old;
      loadAudit();
    }
  }

  // --- audit log ----------------------------------------------------------------------------------
  const LABELS = { restore: "Restore", recovery: "Recovery", export: "Export", drill: "Verification",
                   "access_token.create": "Token created", "access_token.revoke": "Token revoked",
                   "scope.mode": "Scope mode", "scope.repository": "Repository scope" };

  function describe(entry) {
    const d = entry.details || {};
    switch (entry.action) {
      case "restore": return `${entry.target} → ${d.target ? d.target.full_name : "?"}: snapshot ${d.snapshot}, ${plural(Object.keys(d.refs || {}).length, "ref", "refs")}${d.mode ? ` (${d.mode})` : ""}`;
      case "recovery": return `${plural((d.repositories || []).length, "repository", "repositories")} at ${d.at || "the latest backup"}`;
      case "export": return `${entry.target}: snapshot ${d.snapshot} as ${d.format || "export"}${d.offline ? " (offline)" : ""}`;
      case "drill": return `${entry.target}: snapshot ${d.snapshot}`;
      case "access_token.create": return `“${d.label || entry.target}”, expires ${d.expires_at ? new Date(d.expires_at).toLocaleDateString() : "never"}`;
      case "access_token.revoke": return `“${d.label || entry.target}”`;
      case "scope.mode": return `${d.from} → ${d.to}`;
      case "scope.repository": return `${entry.target}: ${d.in_scope ? "backed up" : "not backed up"}`;
      default: return entry.target;
    }
  }

  async function loadAudit() {
    if (boot.view === "repository") return;
    const params = new URLSearchParams({ page: audit.page, pagelen: AUDIT_PAGELEN });
    if ($("audit-action").value) params.set("action", $("audit-action").value);
    const seq = ++audit.seq;
    let data;
    try { data = await api("GET", `/audit?${params}`); } catch (e) { if (e.status !== 401) message(`Could not load the audit log: ${e.message}`, "warning"); return; }
    if (seq !== audit.seq) return;  // a newer load was started meanwhile: never paint an older answer over it
    audit.size = data.size;
    $("audit-rows").replaceChildren(...data.values.map((e) => el("tr", { dataset: { action: e.action } }, [
      el("td", {}, time(e.at)), el("td", {}, e.actor), el("th", { scope: "row" }, LABELS[e.action] || e.action),
      el("td", {}, describe(e)),
    ])));
    $("audit-empty").hidden = data.values.length > 0;
    const first = (audit.page - 1) * AUDIT_PAGELEN;
    $("audit-info").textContent = data.size ? `${first + 1}–${first + data.values.length} of ${data.size}` : "";
    $("audit-prev").disabled = audit.page <= 1;
    $("audit-next").disabled = first + data.values.length >= data.size;
  }

  function wire() {
    $("restore-form").addEventListener("submit", preview);
    $("restore-form").addEventListener("change", formChanged);
    $("restore-name").addEventListener("input", formChanged);
    $("restore-confirm").addEventListener("click", confirmRestore);
    $("restore-close").addEventListener("click", close);
    $("refs-all").addEventListener("click", () => { document.querySelectorAll('input[name="restore-ref"]').forEach((b) => { b.checked = true; }); formChanged(); });
    $("refs-none").addEventListener("click", () => { document.querySelectorAll('input[name="restore-ref"]').forEach((b) => { b.checked = false; }); formChanged(); });
    $("recovery-form").addEventListener("submit", previewRecovery);
    $("recovery-form").addEventListener("change", invalidateRecovery);
    $("recovery-confirm").addEventListener("click", confirmRecovery);
    $("audit-action").addEventListener("change", () => { audit.page = 1; loadAudit(); });
    $("audit-filter").addEventListener("submit", (e) => e.preventDefault());
    $("audit-prev").addEventListener("click", () => { audit.page -= 1; loadAudit(); });
    $("audit-next").addEventListener("click", () => { audit.page += 1; loadAudit(); });
    loadAudit();
  }

  wire();
  return { open, close, download, verificationCell, showVerification, verifyNow, loadAudit };
})();
