// The Inside page's pad (ui/inside.py mounts it; ui/inside_math.js comes first in the same
// module). The visible mount draws; the model and its snapshots arrive as bytes through hidden
// mounts, decoded once per model id into a registry on `window`. The browser keeps those bytes
// in IndexedDB by model id: the pad asks Python for the model only when neither holds it, and
// for the snapshots only when the epoch slider is first moved. While the visitor draws nothing
// goes to Python: each animation frame reads the pad, preprocesses, runs the network and
// paints. Buffers are allocated per model, never per frame.

const REG = (window.__mnistnetInside ||= { models: new Map(), snaps: new Map(), pads: new Set(), strokes: [] });
const PADS = new WeakMap(); // parentElement -> pad: Streamlit calls us again on every rerun
const SIZE = 280;

function peekHeader(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = dv.getUint32(8, true);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen)));
}

// Payloads kept by the browser across visits, by "kind:model id" (at most IDB_KEEP of them).
const IDB_KEEP = 8;
const IDB = {
  db: null,
  open() {
    return (this.db ||= new Promise((ok) => {
      try {
        const r = indexedDB.open("mnistnet-inside", 1);
        r.onupgradeneeded = () => r.result.createObjectStore("payloads");
        r.onsuccess = () => ok(r.result);
        r.onerror = () => ok(null);
      } catch (e) { ok(null); } // no IndexedDB (a private window, say): the server sends them
    }));
  },
  async get(key) {
    const db = await this.open();
    if (!db) return null;
    return new Promise((ok) => {
      try {
        const q = db.transaction("payloads").objectStore("payloads").get(key);
        q.onsuccess = () => ok(q.result || null);
        q.onerror = () => ok(null);
      } catch (e) { ok(null); }
    });
  },
  async put(key, buffer) {
    const db = await this.open();
    if (!db) return;
    try {
      const s = db.transaction("payloads", "readwrite").objectStore("payloads");
      const n = s.count();
      n.onsuccess = () => { if (n.result >= IDB_KEEP) s.clear(); s.put(buffer, key); };
    } catch (e) { /* full or refused: the server sends them next time */ }
  },
};

function receive(bytes, fromCache) {
  const head = peekHeader(bytes);
  const store = head.kind === "snapshots" ? REG.snaps : REG.models;
  if (store.has(head.id)) return; // a rerun sends the same bytes again: decoded already
  const decoded = decodePayload(bytes);
  store.set(head.id, decoded);
  if (!fromCache) IDB.put(`${head.kind}:${head.id}`, bytes.slice().buffer); // a copy: the view may be unaligned
  while (store.size > 2) store.delete(store.keys().next().value); // the last two models only
  for (const pad of REG.pads) pad.refresh();
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (data instanceof ArrayBuffer) { receive(new Uint8Array(data)); return undefined; }
  if (ArrayBuffer.isView(data)) { receive(data); return undefined; }
  if (!data || typeof data !== "object" || !data.model) return undefined;
  let pad = PADS.get(parentElement);
  if (!pad) {
    pad = makePad(parentElement);
    PADS.set(parentElement, pad);
  }
  REG.pads.add(pad);
  pad.update(data, setTriggerValue);
  return () => { REG.pads.delete(pad); PADS.delete(parentElement); pad.stop(); };
}

// ---- colours ------------------------------------------------------------------------------
function ramp(stops) { // 256 RGB entries interpolated between stops
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1), k = Math.min(Math.floor(t), stops.length - 2), f = t - k;
    for (let c = 0; c < 3; c++) lut[3 * i + c] = stops[k][c] + (stops[k + 1][c] - stops[k][c]) * f;
  }
  return lut;
}
const HEAT = ramp([[12, 12, 30], [40, 30, 110], [150, 40, 120], [235, 110, 40], [255, 230, 120]]);
const DIVERGE = ramp([[40, 90, 220], [10, 10, 18], [235, 70, 50]]); // blue - black - red
const DEAD = [120, 120, 120];

const TEMPLATE = `
<div class="top">
  <div class="col pad-col">
    <canvas class="pad" width="280" height="280" aria-label="drawing pad"></canvas>
    <div class="tools">
      <label>Pen <input class="pen" type="range" min="8" max="40" value="20"></label>
      <button class="undo" type="button">Undo</button>
      <button class="clear" type="button">Clear</button>
    </div>
    <div class="keep">
      <label>It is a <select class="label"></select></label>
      <button class="keep-it" type="button" disabled>Keep it</button>
    </div>
  </div>
  <div class="col input-col">
    <div class="caption">What the network sees: 28 x 28</div>
    <canvas class="input" width="28" height="28"></canvas>
    <div class="reading">Draw a digit on the black square.</div>
    <canvas class="probs" width="250" height="170"></canvas>
  </div>
  <div class="col layers-col"><div class="layers"></div>
    <div class="legend">Colour = activation (dark: 0, bright: the layer's largest now);
      grey = dead (silent on every one of the 1,000 MNIST test images checked). Click a unit.</div>
  </div>
</div>
<div class="epochs">
  <div class="epoch-label"></div>
  <input class="epoch" type="range" min="0" max="0" value="0">
</div>
<div class="unit">
  <div class="unit-title">Click a unit in a hidden layer (or a tile below) to see what feeds it.</div>
  <div class="unit-body">
    <div><div class="caption incoming-caption"></div><canvas class="incoming" width="28" height="28"></canvas></div>
    <div><div class="caption">Largest contributions to its value now</div><canvas class="contrib" width="420" height="190"></canvas></div>
  </div>
</div>
<div class="gallery-box">
  <div class="caption gallery-caption"></div>
  <div class="gallery-scroll"><canvas class="gallery" width="720" height="30"></canvas></div>
</div>`;

function makePad(parent) {
  const root = parent.querySelector(".inside-root");
  root.innerHTML = TEMPLATE;
  const $ = (s) => root.querySelector(s);
  const pad = $(".pad"), ctx = pad.getContext("2d", { willReadFrequently: true });
  const inputCanvas = $(".input"), inputCtx = inputCanvas.getContext("2d");
  const inputImage = inputCtx.createImageData(28, 28);
  const probsCtx = $(".probs").getContext("2d");
  const reading = $(".reading"), labelSel = $(".label"), keepBtn = $(".keep-it");
  for (let d = 0; d < 10; d++) labelSel.append(new Option(String(d), String(d)));
  const epochInput = $(".epoch"), epochLabel = $(".epoch-label");
  const galleryCanvas = $(".gallery"), galleryCtx = galleryCanvas.getContext("2d");
  const incoming = $(".incoming"), contribCtx = $(".contrib").getContext("2d");

  let meta = null, trigger = null, model = null, snaps = null, pendingPos = null;
  const asked = new Set();
  // The model's or its snapshots' bytes: from this page's registry, else the browser's cache,
  // else asked of Python (which mounts them, hidden, on the fragment's rerun).
  async function want(kind) {
    const id = meta.model, key = `${kind}:${id}`;
    if ((kind === "model" ? REG.models : REG.snaps).has(id) || asked.has(key)) return;
    asked.add(key);
    const cached = await IDB.get(key);
    if (cached) { receive(new Uint8Array(cached), true); return; }
    if (trigger) trigger("need", { kind, id, nonce: `${Date.now()}-${Math.random()}` });
  }
  let nets = [], netIndex = -1, net = null, dead = [], pre = null;
  let layerViews = [], atlas = null, order = null, selected = null;
  let digit = null, best = -1, labelTouched = false, nonce = null, keeping = false, keptLabel = null;
  let dirty = true, frame = 0, pendingT0 = null, lastGallery = 0, galleryDue = true;
  let region = null, stroke = null, alive = true;
  const strokes = REG.strokes; // survives page switches: the pad comes back with its drawing

  // -- drawing ------------------------------------------------------------------------------
  function grow(x, y, w) {
    const r = w / 2 + 2;
    const x0 = Math.max(0, Math.floor(x - r)), y0 = Math.max(0, Math.floor(y - r));
    const x1 = Math.min(SIZE, Math.ceil(x + r)), y1 = Math.min(SIZE, Math.ceil(y + r));
    if (!region) { region = [x0, y0, x1, y1]; return; }
    if (x0 < region[0]) region[0] = x0;
    if (y0 < region[1]) region[1] = y0;
    if (x1 > region[2]) region[2] = x1;
    if (y1 > region[3]) region[3] = y1;
  }
  function segment(s, i) {
    ctx.lineWidth = s.w;
    ctx.beginPath();
    const p = s.pts;
    ctx.moveTo(p[i > 1 ? i - 2 : 0], p[i > 1 ? i - 1 : 1]);
    ctx.lineTo(p[i], p[i + 1]);
    ctx.stroke();
  }
  function repaintPad() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, SIZE, SIZE);
    ctx.strokeStyle = "#fff"; ctx.lineCap = "round"; ctx.lineJoin = "round";
    region = null;
    for (const s of strokes) {
      ctx.lineWidth = s.w;
      ctx.beginPath();
      ctx.moveTo(s.pts[0], s.pts[1]);
      for (let i = 0; i < s.pts.length; i += 2) { ctx.lineTo(s.pts[i], s.pts[i + 1]); grow(s.pts[i], s.pts[i + 1], s.w); }
      ctx.stroke();
    }
  }
  function point(e) {
    const r = pad.getBoundingClientRect();
    return [((e.clientX - r.left) * SIZE) / r.width, ((e.clientY - r.top) * SIZE) / r.height];
  }
  function changed() {
    if (pendingT0 === null) pendingT0 = performance.now();
    labelTouched = false; keeping = false; keptLabel = null; // a changed drawing can be kept again
    dirty = true;
    schedule();
  }
  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    const [x, y] = point(e);
    stroke = { w: Number($(".pen").value), pts: [x, y] };
    strokes.push(stroke);
    grow(x, y, stroke.w);
    segment(stroke, 0);
    changed();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!stroke) return;
    const t = performance.now();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const [x, y] = point(ev);
      stroke.pts.push(x, y);
      grow(x, y, stroke.w);
      segment(stroke, stroke.pts.length - 2);
    }
    if (pendingT0 === null) pendingT0 = t;
    if (Array.isArray(window.__mnistnetTimingFromEvent) && REG.eventT0 == null) REG.eventT0 = e.timeStamp;
    changed();
  });
  const end = () => { if (stroke) { stroke = null; galleryDue = true; dirty = true; schedule(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  $(".undo").addEventListener("click", () => { strokes.pop(); repaintPad(); galleryDue = true; changed(); });
  $(".clear").addEventListener("click", () => { strokes.length = 0; repaintPad(); galleryDue = true; changed(); });
  labelSel.addEventListener("change", () => { labelTouched = true; keepText(); });
  keepBtn.addEventListener("click", () => {
    if (!digit || !trigger) return;
    nonce = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
    keeping = true;
    keepText();
    trigger("keep", { png: pad.toDataURL("image/png"), label: Number(labelSel.value), shown: best, nonce });
  });
  epochInput.addEventListener("input", () => {
    if (snaps) { useNet(Number(epochInput.value)); return; }
    pendingPos = Number(epochInput.value); // replayed once the snapshots arrive
    epochLabel.textContent = "Loading the training replay...";
    want("snapshots");
  });

  // -- the model ----------------------------------------------------------------------------
  function refresh() {
    if (!meta) return;
    const m = REG.models.get(meta.model);
    if (m && m !== model) setModel(m);
    const s = REG.snaps.get(meta.model) || null;
    if (s !== snaps) { snaps = s; setupEpochs(); }
  }
  function setModel(m) {
    model = m; selected = null; netIndex = -1; pendingPos = null; // another model: start afresh
    const h = m.header;
    pre = makePreprocessor(SIZE, SIZE, h.preprocess);
    nets = [makeNetwork(h.sizes, h.mean, h.std, m.weights, m.biases)];
    snaps = null;
    buildLayers(h.sizes);
    order = new Int32Array(h.sizes[1]);
    setupEpochs();
    useNet(0, true);
  }
  function snapshotNet(k) { // decoded from float16 the first time the slider reaches it
    const s = snaps.snapshots[k], h = model.header;
    if (!s.net) s.net = makeNetwork(h.sizes, h.mean, h.std, s.weights.map(halfToFloat), s.biases.map(halfToFloat));
    return s.net;
  }
  function setupEpochs() {
    const box = $(".epochs");
    if (!meta || !meta.snapshots) {
      box.classList.add("none");
      epochLabel.textContent = meta && meta.no_snapshots ? meta.no_snapshots : "";
      epochInput.hidden = true;
      return;
    }
    box.classList.remove("none");
    epochInput.hidden = false;
    epochInput.disabled = false;
    const n = snaps ? snaps.snapshots.length : meta.snapshots;
    epochInput.max = String(n);
    if (!snaps) { // fetched when the slider first moves
      if (pendingPos === null) {
        epochInput.value = String(n);
        epochLabel.textContent = `Through training: now, the current model (slide left to replay the ${n} snapshots)`;
      }
      return;
    }
    const pos = pendingPos === null ? n : pendingPos;
    pendingPos = null;
    epochInput.value = String(pos);
    useNet(pos, true);
  }
  function epochText(e) {
    if (e === 0) return "the initial random weights (before any training)";
    if (e < 1) return `early in epoch 1 (${Math.round(e * 100)}% of it)`;
    if (Number.isInteger(e)) return `the end of epoch ${e}`;
    return `epoch ${e.toFixed(2)}`;
  }
  // Slider positions 0..n-1 are the snapshots, n is the current model (index 0 of `nets`).
  function useNet(pos, force) {
    const n = snaps ? snaps.snapshots.length : 0;
    const idx = !snaps || pos >= n ? 0 : pos + 1;
    if (snaps) {
      epochLabel.textContent = idx === 0 ? `Through training: now, the current model (slide left to replay the ${n} snapshots)`
        : `Through training: ${epochText(snaps.snapshots[pos].epoch)}`;
    }
    if (idx === netIndex && !force) return;
    netIndex = idx;
    net = idx === 0 ? nets[0] : snapshotNet(pos);
    const d = idx === 0 ? model.header.dead : snaps.snapshots[pos].dead;
    dead = d.map((list) => { const s = new Set(list); return s; });
    atlas = makeAtlas(net);
    drawIncoming();
    galleryDue = true;
    dirty = true;
    schedule();
  }

  // -- hidden layers --------------------------------------------------------------------------
  function buildLayers(sizes) {
    const box = $(".layers");
    box.innerHTML = "";
    layerViews = [];
    for (let l = 1; l < sizes.length - 1; l++) {
      const n = sizes[l], cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
      const wrap = document.createElement("div");
      wrap.className = "layer";
      wrap.innerHTML = `<div class="caption"></div><div class="grid-wrap"><canvas class="grid" width="${cols}" height="${rows}"></canvas><div class="mark"></div></div>`;
      box.append(wrap);
      const canvas = wrap.querySelector("canvas"), c2 = canvas.getContext("2d");
      const cell = Math.max(3, Math.min(24, Math.floor(200 / cols)));
      canvas.style.width = `${cols * cell}px`; canvas.style.height = `${rows * cell}px`;
      const view = { l: l - 1, n, cols, rows, cell, canvas, ctx: c2, img: c2.createImageData(cols, rows),
        caption: wrap.querySelector(".caption"), mark: wrap.querySelector(".mark"), text: "" };
      canvas.addEventListener("click", (e) => {
        const r = canvas.getBoundingClientRect();
        const u = Math.floor((e.clientY - r.top) / cell) * cols + Math.floor((e.clientX - r.left) / cell);
        if (u < n) select(view.l, u);
      });
      layerViews.push(view);
    }
  }
  function select(l, u) {
    selected = { l, u };
    for (const v of layerViews) {
      v.mark.style.display = v.l === l ? "block" : "none";
      if (v.l === l) {
        v.mark.style.left = `${(u % v.cols) * v.cell - 1}px`; v.mark.style.top = `${Math.floor(u / v.cols) * v.cell - 1}px`;
        v.mark.style.width = v.mark.style.height = `${v.cell}px`;
      }
    }
    drawIncoming();
    dirty = true;
    schedule();
  }
  function paintLayers() {
    for (const v of layerViews) {
      const a = net.acts[v.l], data = v.img.data, deadSet = dead[v.l];
      let mx = 0, active = 0;
      for (let j = 0; j < v.n; j++) { if (a[j] > mx) mx = a[j]; if (a[j] > 0) active++; }
      const k = mx > 0 ? 255 / mx : 0;
      for (let j = 0; j < v.cols * v.rows; j++) {
        const p = 4 * j;
        if (j >= v.n) { data[p + 3] = 0; continue; }
        if (deadSet.has(j)) { data[p] = DEAD[0]; data[p + 1] = DEAD[1]; data[p + 2] = DEAD[2]; }
        else { const c = 3 * Math.round(a[j] * k); data[p] = HEAT[c]; data[p + 1] = HEAT[c + 1]; data[p + 2] = HEAT[c + 2]; }
        data[p + 3] = 255;
      }
      v.ctx.putImageData(v.img, 0, 0);
      const text = `Hidden layer ${v.l + 1}: ${v.n} units, ${active} active, ${deadSet.size} dead`;
      if (text !== v.text) { v.text = text; v.caption.textContent = text; }
    }
  }

  // -- input, reading, probabilities ----------------------------------------------------------
  function paintInput() {
    const d = inputImage.data;
    for (let i = 0; i < 784; i++) {
      const v = digit ? digit[i] : 0;
      d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v; d[4 * i + 3] = 255;
    }
    inputCtx.putImageData(inputImage, 0, 0);
  }
  function paintProbs(p) {
    const c = probsCtx, W = 250, rowH = 17;
    c.clearRect(0, 0, W, 170);
    c.font = "12px sans-serif";
    c.textBaseline = "middle";
    for (let k = 0; k < 10; k++) {
      const y = k * rowH;
      c.fillStyle = "#888"; c.fillText(String(k), 2, y + rowH / 2);
      c.fillStyle = "rgba(128,128,128,0.2)"; c.fillRect(16, y + 3, 170, rowH - 6);
      if (p) {
        c.fillStyle = k === best ? "#ff4b4b" : "#5b8def";
        c.fillRect(16, y + 3, 170 * p[k], rowH - 6);
        c.fillStyle = "#888"; c.fillText(`${(100 * p[k]).toFixed(1)}%`, 192, y + rowH / 2);
      }
    }
  }
  let readingText = "";
  function paintReading(p) {
    let html;
    if (!p) html = "Draw a digit on the black square: the network reads it as you draw.";
    else html = `The network reads <span id="inside-digit">${best}</span> <span class="conf">${(100 * p[best]).toFixed(1)}%</span>`;
    if (html !== readingText) { readingText = html; reading.innerHTML = html; }
    keepText();
  }
  function button(text, disabled) {
    if (keepBtn.textContent !== text) keepBtn.textContent = text;
    if (keepBtn.disabled !== disabled) keepBtn.disabled = disabled;
  }
  function keepText() {
    if (!labelTouched && best >= 0 && labelSel.value !== String(best)) labelSel.value = String(best);
    const answer = meta && meta.kept;
    if (keeping && answer && answer.nonce === nonce) { // Python has answered this request
      keeping = false;
      if (answer.ok) keptLabel = answer.label;
    }
    if (keptLabel !== null) button(`Kept as a ${keptLabel}`, true);
    else if (keeping) button("Keeping...", true);
    else button(Number(labelSel.value) !== best ? "Correct it" : "Keep it", !digit);
  }

  // -- a unit: incoming weights and contributions --------------------------------------------
  function drawIncoming() {
    const cap = $(".incoming-caption");
    $(".unit-body").style.display = selected ? "flex" : "none";
    if (!selected || !net) { cap.textContent = ""; return; }
    const { l, u } = selected, W = net.weights[l], nIn = net.sizes[l], nOut = net.sizes[l + 1];
    let mx = 1e-12;
    for (let i = 0; i < nIn; i++) mx = Math.max(mx, Math.abs(W[i * nOut + u]));
    if (l === 0) {
      incoming.width = 28; incoming.height = 28; incoming.className = "incoming image";
      const c = incoming.getContext("2d"), img = c.createImageData(28, 28);
      for (let i = 0; i < 784; i++) {
        const k = 3 * Math.round(127.5 + (127.5 * W[i * nOut + u]) / mx);
        img.data.set([DIVERGE[k], DIVERGE[k + 1], DIVERGE[k + 2], 255], 4 * i);
      }
      c.putImageData(img, 0, 0);
      cap.textContent = "Its incoming weights, one per pixel (red +, blue -)";
    } else {
      incoming.width = 420; incoming.height = 120; incoming.className = "incoming bars";
      const c = incoming.getContext("2d"), bw = 420 / nIn;
      c.clearRect(0, 0, 420, 120);
      for (let i = 0; i < nIn; i++) {
        const w = W[i * nOut + u], h = (56 * Math.abs(w)) / mx;
        c.fillStyle = w >= 0 ? "#eb4632" : "#285adc";
        c.fillRect(i * bw, w >= 0 ? 60 - h : 60, Math.max(bw - (bw > 3 ? 1 : 0), 0.5), h);
      }
      cap.textContent = `Its ${nIn} incoming weights from hidden layer ${l} (red +, blue -)`;
    }
  }
  const TOP = 8, topIdx = new Int32Array(TOP), topVal = new Float64Array(TOP);
  function paintUnit() {
    if (!selected || !net) return;
    const { l, u } = selected, W = net.weights[l], nIn = net.sizes[l], nOut = net.sizes[l + 1];
    const x = l === 0 ? net.scaled : net.acts[l - 1], b = net.biases[l][u];
    let pre = b, k = 0;
    for (let i = 0; i < nIn; i++) {
      const c = x[i] * W[i * nOut + u];
      pre += c;
      if (k < TOP || Math.abs(c) > Math.abs(topVal[k - 1])) { // keep the TOP largest by size, sorted
        let j = k < TOP ? k++ : TOP - 1;
        while (j > 0 && Math.abs(topVal[j - 1]) < Math.abs(c)) { topVal[j] = topVal[j - 1]; topIdx[j] = topIdx[j - 1]; j--; }
        topVal[j] = c; topIdx[j] = i;
      }
    }
    const act = net.acts[l][u], isDead = dead[l].has(u);
    $(".unit-title").textContent = `Hidden layer ${l + 1}, unit ${u}: ${act.toFixed(3)}` +
      (act > 0 ? "" : ` (ReLU of ${pre.toFixed(3)})`) + (isDead ? ", dead on MNIST" : "") +
      ` = ReLU(bias ${b.toFixed(3)} + ${nIn} contributions)`;
    const c = contribCtx;
    c.clearRect(0, 0, 420, 190);
    c.font = "12px sans-serif"; c.textBaseline = "middle";
    let mx = 1e-12;
    for (let j = 0; j < k; j++) mx = Math.max(mx, Math.abs(topVal[j]));
    for (let j = 0; j < k; j++) {
      const y = j * 23 + 4, i = topIdx[j], v = topVal[j], w = (120 * Math.abs(v)) / mx;
      const name = l === 0 ? `pixel (${Math.floor(i / 28)}, ${i % 28})` : `unit ${i} of layer ${l}`;
      c.fillStyle = "#888"; c.fillText(name, 0, y + 9);
      c.fillStyle = v >= 0 ? "#eb4632" : "#285adc";
      c.fillRect(v >= 0 ? 250 : 250 - w, y + 2, w, 15);
      c.fillStyle = "#888"; c.fillText(`${v >= 0 ? "+" : ""}${v.toFixed(3)}`, 375, y + 9);
    }
  }

  // -- gallery of first-layer features ------------------------------------------------------
  const TILE = 28, GAP = 2, GCOLS = 24;
  function makeAtlas(n) { // every first-layer unit's weights as a 28x28 tile, once per network
    const units = n.sizes[1], W = n.weights[0];
    const c = document.createElement("canvas");
    c.width = TILE * 32; c.height = TILE * Math.ceil(units / 32);
    const cx = c.getContext("2d"), img = cx.createImageData(c.width, c.height);
    for (let u = 0; u < units; u++) {
      let mx = 1e-12;
      for (let i = 0; i < 784; i++) mx = Math.max(mx, Math.abs(W[i * units + u]));
      const ox = (u % 32) * TILE, oy = Math.floor(u / 32) * TILE;
      for (let i = 0; i < 784; i++) {
        const k = 3 * Math.round(127.5 + (127.5 * W[i * units + u]) / mx);
        const p = 4 * ((oy + Math.floor(i / 28)) * c.width + ox + (i % 28));
        img.data[p] = DIVERGE[k]; img.data[p + 1] = DIVERGE[k + 1]; img.data[p + 2] = DIVERGE[k + 2]; img.data[p + 3] = 255;
      }
    }
    cx.putImageData(img, 0, 0);
    return c;
  }
  const byDrive = (a, b) => net.acts[0][b] - net.acts[0][a];
  function paintGallery() {
    const units = net.sizes[1], rows = Math.ceil(units / GCOLS), h = rows * (TILE + GAP);
    if (galleryCanvas.height !== h) galleryCanvas.height = h;
    for (let u = 0; u < units; u++) order[u] = u;
    if (digit) order.sort(byDrive);
    galleryCtx.clearRect(0, 0, galleryCanvas.width, h);
    for (let k = 0; k < units; k++) {
      const u = order[k];
      galleryCtx.drawImage(atlas, (u % 32) * TILE, Math.floor(u / 32) * TILE, TILE, TILE,
        (k % GCOLS) * (TILE + GAP), Math.floor(k / GCOLS) * (TILE + GAP), TILE, TILE);
    }
    $(".gallery-caption").textContent = digit
      ? `All ${units} first-layer units' weights (red +, blue -), the ones this drawing drives hardest first`
      : `All ${units} first-layer units' weights (red +, blue -); draw to order them by how hard your digit drives them`;
  }
  galleryCanvas.addEventListener("click", (e) => {
    const r = galleryCanvas.getBoundingClientRect(), s = galleryCanvas.width / r.width; // shrunk on a phone
    const k = Math.floor(((e.clientY - r.top) * s) / (TILE + GAP)) * GCOLS
      + Math.floor(((e.clientX - r.left) * s) / (TILE + GAP));
    if (net && k < net.sizes[1]) select(0, order[k]);
  });

  // -- the frame ----------------------------------------------------------------------------
  function schedule() { if (!frame && alive) frame = requestAnimationFrame(tick); }
  function tick() {
    frame = 0;
    if (!dirty || !net) return;
    dirty = false;
    if (region && strokes.length) {
      const [x0, y0, x1, y1] = region;
      const img = ctx.getImageData(x0, y0, x1 - x0, y1 - y0);
      digit = pre.run(img.data, x0, y0, x1 - x0, y1 - y0);
    } else digit = null;
    let p = null;
    if (digit) {
      p = net.forward(digit);
      best = 0;
      for (let k = 1; k < 10; k++) if (p[k] > p[best]) best = k;
    } else {
      best = -1;
      for (const a of net.acts) a.fill(0);
    }
    paintInput();
    paintLayers();
    paintProbs(p);
    paintReading(p);
    paintUnit();
    const now = performance.now();
    if (pendingT0 !== null) {
      if (Array.isArray(window.__mnistnetTiming) && stroke) window.__mnistnetTiming.push(now - pendingT0);
      pendingT0 = null;
    }
    if (REG.eventT0 != null) {
      if (Array.isArray(window.__mnistnetTimingFromEvent) && stroke) window.__mnistnetTimingFromEvent.push(now - REG.eventT0);
      REG.eventT0 = null;
    }
    if (galleryDue || (stroke && now - lastGallery > 250)) { // the gallery keeps up, 4 times a second
      galleryDue = false; lastGallery = now;
      paintGallery();
    }
  }

  function update(data, setTriggerValue) {
    const first = meta === null;
    meta = data; trigger = setTriggerValue;
    if (first) repaintPad();
    refresh();
    if (!model) reading.textContent = "Loading the network...";
    if (!REG.models.has(meta.model)) want("model");
    keepText();
    if (meta.snapshots && !snaps) setupEpochs();
  }
  return { update, refresh, stop() { alive = false; if (frame) cancelAnimationFrame(frame); } };
}
