// The JaDFS console's behaviour: confirmations, copy buttons, uploads with
// progress (each file PUT straight to a URL presigned for the session's
// key), and the overview's throughput chart. No framework, no build step.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

// Forms that destroy something ask first.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Copy buttons: data-copy names the input whose value they copy.
document.addEventListener("click", async (event) => {
  const id = event.target.dataset && event.target.dataset.copy;
  if (!id) return;
  const input = document.getElementById(id);
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
  } catch (_) {
    document.execCommand("copy"); // plain HTTP has no clipboard API
  }
  event.target.textContent = "Copied";
});

function uploadRow(name) {
  const row = document.createElement("div");
  row.className = "upload";
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  const state = document.createElement("span");
  state.className = "muted";
  row.append(label, bar, state);
  document.getElementById("uploads").append(row);
  return { bar, state };
}

async function uploadOne(form, file) {
  const { bar, state } = uploadRow(file.name);
  const asked = await fetch(form.dataset.url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify({ key: form.dataset.prefix + file.name }),
  });
  const answer = await asked.json();
  if (!asked.ok) {
    state.textContent = answer.error || "refused";
    bar.classList.add("bad");
    return false;
  }
  return new Promise((resolve) => {
    const put = new XMLHttpRequest();
    put.open("PUT", answer.url);
    put.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    };
    put.onload = () => {
      const ok = put.status >= 200 && put.status < 300;
      bar.value = ok ? 100 : bar.value;
      if (!ok) bar.classList.add("bad");
      state.textContent = ok ? "done" : "failed: " + put.status;
      resolve(ok);
    };
    put.onerror = () => {
      bar.classList.add("bad");
      state.textContent = "failed: no connection";
      resolve(false);
    };
    put.send(file);
  });
}

const upload = document.getElementById("upload");
if (upload) {
  upload.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = Array.from(document.getElementById("files").files);
    const results = [];
    for (const file of files) results.push(await uploadOne(upload, file));
    if (results.every(Boolean)) window.location.reload();
  });
}

// The overview's chart: this gateway's bytes in and out per second, from
// its totals, sampled every two seconds for the last two minutes.
const chart = document.getElementById("throughput");
if (chart) {
  const points = [];
  const svg = "http://www.w3.org/2000/svg";
  const lines = ["in_", "out"].map((name) => {
    const line = document.createElementNS(svg, "polyline");
    line.setAttribute("class", name);
    chart.append(line);
    return line;
  });
  const mib = (bytes) => (bytes / 1048576).toFixed(2);
  let last = null;
  const sample = async () => {
    const answer = await fetch("/-/console/throughput", { credentials: "same-origin" });
    if (!answer.ok) return;
    const now = await answer.json();
    if (last) {
      const seconds = Math.max(0.001, (now.ms - last.ms) / 1000);
      points.push({
        in_: (now.received - last.received) / seconds,
        out: (now.sent - last.sent) / seconds,
        ops: (now.requests - last.requests) / seconds,
      });
      if (points.length > 60) points.shift();
      const top = Math.max(1, ...points.map((p) => Math.max(p.in_, p.out)));
      lines.forEach((line, i) => {
        const key = i === 0 ? "in_" : "out";
        line.setAttribute("points", points.map((p, x) => `${(x * 600) / 59},${140 - (p[key] / top) * 130}`).join(" "));
      });
      const p = points[points.length - 1];
      document.getElementById("rate").textContent =
        `${mib(p.in_)} MiB/s in, ${mib(p.out)} MiB/s out, ${p.ops.toFixed(1)} requests/s`;
    }
    last = now;
  };
  sample();
  setInterval(sample, 2000);
}
