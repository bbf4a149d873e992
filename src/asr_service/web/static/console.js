"use strict";
// The web console: every action is an API call (/jobs, /corrections), so what a person does here a test can do too.

const MESSAGES = {
  unsupported_audio: "不支持的文件格式：请上传 WAV、MP3、FLAC、OGG、AMR 或 M4A 录音。",
  empty_audio: "录音是空的或太短，没有可转写的声音。",
  audio_too_long: "录音太长，超过了服务允许的时长。",
  payload_too_large: "文件太大，超过了 256 MB 的上传上限。",
  rate_limited: "操作太频繁，请稍等几秒再试。",
  overloaded: "服务繁忙，请稍后再试。",
  not_ready: "服务繁忙或正在重启，请稍后再试。",
  unauthorized: "登录已失效，请刷新页面重新登录。",
  invalid_request: "请求有误：",
  not_found: "找不到这个来电，它可能已被删除。",
  timeout: "转写超时，请稍后重试。",
  audio_gone: "这通来电的录音没有保留，无法播放。",
};
const STATUS = { queued: "排队中", running: "转写中", succeeded: "已完成", failed: "失败", cancelled: "已取消" };
const ROLES = { agent: "坐席", caller: "市民" };
const CATEGORIES = ["市政设施", "住房物业", "环境保护", "交通出行", "教育服务", "医疗卫生", "劳动社保", "市场监管",
  "公共安全", "咨询建议", "其他"];
const JOB_POLL_MS = 2000;
const LIST_POLL_MS = 5000;

const $ = (id) => document.getElementById(id);
let current = null;      // the job shown
let segments = [];       // its segments, in order
let playingIndex = -1;
let pollTimer = null;
let showToken = 0;       // only the latest showJob call renders
let renderedKey = "";    // what the segments now show: re-rendered only when it changes

function errorText(body, status) {
  const code = body && body.error && body.error.code;
  if (code === "invalid_request") return MESSAGES.invalid_request + (body.error.message || "");
  if (code && MESSAGES[code]) return MESSAGES[code];
  if (status === 413) return MESSAGES.payload_too_large;
  if (status === 429) return MESSAGES.rate_limited;
  if (status === 502 || status === 503 || status === 504) return MESSAGES.overloaded;
  if (status === 401) return MESSAGES.unauthorized;
  return "出错了（" + status + "）" + (body && body.error ? "：" + body.error.message : "");
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) throw new Error(errorText(body, response.status));
  return body;
}

function clock(seconds) {
  const m = Math.floor(seconds / 60), s = seconds - m * 60;
  return String(m).padStart(2, "0") + ":" + s.toFixed(1).padStart(4, "0");
}

function minutes(seconds) {
  const s = Math.round(seconds);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function shortTime(iso) {
  const d = new Date(iso);
  const two = (n) => String(n).padStart(2, "0");
  return two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ---- upload and record
function uploadFile(file) {
  const item = el("li", {}, el("span", { text: file.name }), el("progress", { max: "1", value: "0" }),
    el("span", { class: "upload-state", text: "上传中" }));
  $("uploads").prepend(item);
  $("upload-error").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("language", $("language").value);
  form.append("channels", $("channels").value);
  if ($("hotwords").value.trim()) form.append("hotwords", $("hotwords").value.trim());
  form.append("analyze", "true");
  form.append("keep_audio", "true");
  form.append("priority", "interactive");
  const request = new XMLHttpRequest();
  request.open("POST", "/jobs");
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) item.querySelector("progress").value = event.loaded / event.total;
  };
  request.onload = () => {
    let body = null;
    try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
    if (request.status === 202 && body) {
      item.querySelector(".upload-state").textContent = "已提交";
      item.querySelector("progress").value = 1;
      location.hash = "job=" + body.id;
      refreshList();
    } else {
      item.querySelector(".upload-state").textContent = "失败";
      item.classList.add("failed");
      $("upload-error").textContent = file.name + "：" + errorText(body, request.status);
      $("upload-error").hidden = false;
    }
  };
  request.onerror = () => {
    $("upload-error").textContent = file.name + "：网络中断，上传没有完成。";
    $("upload-error").hidden = false;
  };
  request.send(form);
}

function setUpUpload() {
  $("file-input").addEventListener("change", () => {
    for (const file of $("file-input").files) uploadFile(file);
    $("file-input").value = "";
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    for (const file of e.dataTransfer.files) uploadFile(file);
  });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); } });
  let recorder = null;
  $("record-button").addEventListener("click", async () => {
    if (recorder && recorder.state === "recording") { recorder.stop(); return; }
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      $("record-status").textContent = "此浏览器不支持录音。";
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = (e) => chunks.push(e.data);
      recorder.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        $("record-button").textContent = "● 录音";
        $("record-status").textContent = "";
        const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
        uploadFile(new File(chunks, "录音-" + stamp + ".webm", { type: recorder.mimeType || "audio/webm" }));
      };
      recorder.start();
      $("record-button").textContent = "■ 停止并上传";
      $("record-status").textContent = "正在录音…";
    } catch (e) {
      $("record-status").textContent = "无法使用麦克风：" + e.message;
    }
  });
}

// ---- the list of recent jobs
async function refreshList() {
  const status = $("status-filter").value;
  let body;
  try {
    body = await api("/jobs?limit=50" + (status ? "&status=" + status : ""));
  } catch (e) {
    $("service-status").textContent = e.message;
    return;
  }
  $("service-status").textContent = "服务正常";
  const urgency = $("urgency-filter").value;
  const name = $("name-filter").value.trim();
  const rows = body.jobs.filter((job) => (!urgency || job.urgency === urgency)
    && (!name || (job.filename || "").includes(name)));
  const tbody = $("job-table").querySelector("tbody");
  tbody.replaceChildren(...rows.map((job) => {
    const row = el("tr", { "data-job": job.id, tabindex: "0", class: job.id === (current && current.id) ? "selected" : "" },
      el("td", { text: job.filename || job.id.slice(0, 8) }),
      el("td", { text: shortTime(job.created_at), title: new Date(job.created_at).toLocaleString("zh-CN", { hour12: false }) }),
      el("td", { class: "status-" + job.status, text: STATUS[job.status] + (job.status === "running" ? " " + Math.round(job.progress * 100) + "%" : "") }),
      el("td", { text: job.duration != null ? minutes(job.duration) : "" }),
      el("td", { text: job.category || "" }),
      el("td", { class: job.urgency ? "urgency-" + job.urgency : "", text: job.urgency || "" }));
    row.title = job.filename || job.id;
    row.addEventListener("click", () => { location.hash = "job=" + job.id; });
    row.addEventListener("keydown", (e) => { if (e.key === "Enter") location.hash = "job=" + job.id; });
    return row;
  }));
}

// ---- one job
async function showJob(id) {
  clearTimeout(pollTimer);
  const token = ++showToken;
  let job;
  try {
    job = await api("/jobs/" + id);
    if (token !== showToken) return;
  } catch (e) {
    if (token !== showToken) return;
    $("call-empty").hidden = true;
    $("call-view").hidden = false;
    $("call-body").hidden = true;
    $("call-error").textContent = e.message;
    $("call-error").hidden = false;
    return;
  }
  const changed = !current || current.id !== job.id;
  current = job;
  $("call-empty").hidden = true;
  $("call-view").hidden = false;
  $("call-title").textContent = job.filename || job.id;
  $("call-status").textContent = STATUS[job.status];
  $("call-status").className = "status-" + job.status;
  $("call-progress").value = job.progress;
  $("call-progress").hidden = job.status !== "queued" && job.status !== "running";
  $("call-error").hidden = !job.error;
  if (job.error) $("call-error").textContent = errorText({ error: job.error }, 422);
  if (job.status === "queued" || job.status === "running") {
    $("call-body").hidden = true;
    pollTimer = setTimeout(() => showJob(id), JOB_POLL_MS);
    return;
  }
  if (job.status !== "succeeded") { $("call-body").hidden = true; return; }
  $("call-body").hidden = false;
  if (changed || !$("player").getAttribute("src")) {
    $("player").src = "/jobs/" + job.id + "/audio";
    playingIndex = -1;
  }
  const stem = (job.filename || job.id).replace(/\.[^.]+$/, "");
  for (const [format, ext] of [["text", "txt"], ["srt", "srt"], ["vtt", "vtt"], ["json", "json"]]) {
    const link = $("download-" + (format === "text" ? "text" : ext));
    link.href = "/jobs/" + job.id + "/result?response_format=" + format;
    link.setAttribute("download", stem + "." + ext);
  }
  const key = job.id + "|" + JSON.stringify(job.result.segments.map((s) => s.text)) + "|" + JSON.stringify(job.result.ticket);
  if (key !== renderedKey) {
    renderedKey = key;
    renderSegments(job.result);
    renderTicket(job.result.ticket);
  }
  refreshList();
}

function confidenceClass(confidence) {
  return confidence >= 0.8 ? "conf-high" : confidence >= 0.6 ? "conf-mid" : "conf-low";
}

function renderSegments(result) {
  segments = result.segments;
  const list = $("segments");
  list.replaceChildren(...segments.map((segment, index) => {
    const text = el("span", { class: "text", text: segment.text });
    const edit = el("button", { type: "button", class: "edit", text: "更正", title: "更正这一段的文字" });
    const item = el("li", {
      class: "segment " + confidenceClass(segment.confidence) + (segment.needs_review ? " review" : ""),
      "data-index": String(index), "data-start": String(segment.start), tabindex: "0",
      title: "可信度 " + Math.round(segment.confidence * 100) + "%",
    },
    el("span", { class: "time", text: clock(segment.start) + "–" + clock(segment.end) }),
    el("span", { class: "role", text: ROLES[segment.speaker] || "" }),
    text, edit);
    if (segment.needs_review) item.append(el("span", { class: "flag", text: "需复核" }));
    if (segment.corrected_by) {
      item.classList.add("corrected");
      item.append(el("div", { class: "correction-note", text: "已由 " + segment.corrected_by + " 更正，原文：" + segment.original_text }));
    }
    item.addEventListener("click", (e) => { if (!e.target.closest("button, textarea")) playSegment(index); });
    edit.addEventListener("click", () => editSegment(item, segment));
    return item;
  }));
  applyReviewFilter();
}

function editSegment(item, segment) {
  if (item.querySelector("textarea")) return;
  const box = el("textarea", { rows: "2", "aria-label": "更正后的文字" });
  box.value = segment.text;
  const save = el("button", { type: "button", class: "save", text: "保存" });
  const cancel = el("button", { type: "button", text: "取消" });
  const editor = el("div", { class: "editor" }, box, save, cancel);
  item.append(editor);
  box.focus();
  cancel.addEventListener("click", () => editor.remove());
  save.addEventListener("click", async () => {
    try {
      await api("/corrections", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ job_id: current.id, segment_id: segment.id, field: "text", corrected: box.value }),
      });
      await showJob(current.id);
    } catch (e) {
      editor.append(el("span", { class: "error", text: e.message }));
    }
  });
}

function renderTicket(ticket) {
  const body = $("ticket-body");
  if (!ticket) { body.replaceChildren(el("p", { text: "这通来电没有生成工单。" })); return; }
  const field = (label, value, cls = "") => el("div", { class: "field " + cls }, el("dt", { text: label }), el("dd", { text: value || "—" }));
  const parts = [];
  if (ticket.emergency_referral) parts.push(el("p", { class: "referral", text: "请立即转 " + ticket.emergency_referral }));
  if (ticket.repeat_of.length) {
    const links = ticket.repeat_of.map((id) => el("a", { href: "#job=" + id, text: id.slice(0, 8) }));
    const warning = el("p", { class: "repeat", text: "重复来电：与此前 " + ticket.repeat_of.length + " 个来电是同一地点的同一问题 " });
    links.forEach((link) => warning.append(link, " "));
    parts.push(warning);
  }
  const list = el("dl", {},
    field("类别", ticket.category), field("紧急程度", ticket.urgency, "urgency-" + ticket.urgency),
    field("诉求类型", ticket.request_type), field("地点", ticket.location), field("区", ticket.district),
    field("承办部门", ticket.department), field("摘要", ticket.summary), field("关键词", ticket.keywords.join("、")));
  parts.push(list);
  if (ticket.corrected_by) parts.push(el("p", { class: "correction-note", text: "工单已由 " + ticket.corrected_by + " 更正" }));
  const category = el("select", { id: "fix-category", "aria-label": "更正类别" }, ...CATEGORIES.map((c) => el("option", { value: c, text: c })));
  category.value = ticket.category;
  const urgency = el("select", { id: "fix-urgency", "aria-label": "更正紧急程度" }, ...["高", "中", "低"].map((u) => el("option", { value: u, text: u })));
  urgency.value = ticket.urgency;
  const department = el("input", { id: "fix-department", "aria-label": "更正承办部门" });
  department.value = ticket.department;
  const save = el("button", { type: "button", id: "fix-ticket", text: "保存工单更正" });
  const note = el("span", { class: "fix-result" });
  save.addEventListener("click", async () => {
    const changes = [["category", category.value], ["urgency", urgency.value], ["department", department.value.trim()]]
      .filter(([name, value]) => value && value !== ticket[name]);
    try {
      for (const [name, value] of changes) {
        await api("/corrections", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ job_id: current.id, field: name, corrected: value }) });
      }
      await showJob(current.id);
    } catch (e) { note.textContent = e.message; }
  });
  parts.push(el("fieldset", {}, el("legend", { text: "更正工单" }), category, urgency, department, save, note));
  body.replaceChildren(...parts);
}

function applyReviewFilter() {
  const only = $("review-only").checked;
  for (const item of $("segments").children) item.hidden = only && !item.classList.contains("review");
}

// ---- playback
function playSegment(index) {
  if (index < 0 || index >= segments.length) return;
  const player = $("player");
  player.currentTime = segments[index].start;
  highlight(index);
  player.play().catch(() => {});
}

function highlight(index) {
  if (index === playingIndex) return;
  const items = $("segments").children;
  if (items[playingIndex]) items[playingIndex].classList.remove("playing");
  playingIndex = index;
  if (items[index]) {
    items[index].classList.add("playing");
    items[index].scrollIntoView({ block: "nearest" });
  }
}

function setUpPlayer() {
  const player = $("player");
  player.addEventListener("timeupdate", () => {
    const t = player.currentTime;
    const index = segments.findIndex((s) => s.start <= t + 0.05 && t < s.end);
    if (index !== -1) highlight(index);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("input, textarea, select, button")) return;
    if (!current || $("call-body").hidden) return;
    if (e.key === " ") { e.preventDefault(); player.paused ? player.play().catch(() => {}) : player.pause(); }
    else if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); playSegment(Math.min(segments.length - 1, playingIndex + 1)); }
    else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); playSegment(Math.max(0, playingIndex - 1)); }
  });
}

function route() {
  const match = location.hash.match(/job=([0-9a-f]+)/);
  if (match) showJob(match[1]);
}

document.addEventListener("DOMContentLoaded", () => {
  setUpUpload();
  setUpPlayer();
  $("review-only").addEventListener("change", applyReviewFilter);
  for (const id of ["status-filter", "urgency-filter"]) $(id).addEventListener("change", refreshList);
  $("name-filter").addEventListener("input", refreshList);
  window.addEventListener("hashchange", route);
  route();
  refreshList();
  setInterval(() => { if (document.visibilityState === "visible") refreshList(); }, LIST_POLL_MS);
});
