// The Inside page's entry (last of the page's one module, after ui/inside_math.js, the pad
// ui/inside_pad.js and the views ui/inside_views.js, inside_layers.js, inside_detail.js,
// inside_epochs.js): the component's default export, and the wiring of those modules.
// The visible mount draws; the model and its snapshots arrive as bytes through hidden mounts,
// decoded once per model id into a registry on `window`. The browser keeps those bytes in
// IndexedDB by model id: the pad asks Python for the model only when neither holds it, and
// for the snapshots only when the epoch slider is first moved. While the visitor draws
// nothing goes to Python: each animation frame reads the pad, preprocesses, runs the network
// (an MLP: makeNetwork; a stack of layers: makeStack) and paints. Buffers are allocated per
// model, never per frame.

const REG = (window.__mnistnetInside ||= { models: new Map(), snaps: new Map(), pads: new Set(), strokes: [] });
const PADS = new WeakMap(); // parentElement -> pad: Streamlit calls us again on every rerun

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
    pad = makeInside(parentElement);
    PADS.set(parentElement, pad);
  }
  REG.pads.add(pad);
  pad.update(data, setTriggerValue);
  return () => { REG.pads.delete(pad); PADS.delete(parentElement); pad.stop(); };
}

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
  <div class="col layers-col"><div class="layers"></div><div class="legend"></div></div>
</div>
<div class="epochs">
  <div class="epoch-label"></div>
  <input class="epoch" type="range" min="0" max="0" value="0">
</div>
<div class="unit">
  <div class="unit-title"></div>
  <div class="unit-body">
    <div><div class="caption incoming-caption"></div><canvas class="incoming" width="28" height="28"></canvas>
      <div class="tiles incoming-tiles"></div></div>
    <div><div class="caption">Largest contributions to its value now</div>
      <canvas class="contrib" width="420" height="190"></canvas></div>
  </div>
  <div class="channel-body">
    <div class="pool-before"><div class="caption before-caption"></div><canvas class="before-map map"></canvas></div>
    <div class="channel-now"><div class="caption now-caption"></div><canvas class="channel-map map"></canvas></div>
    <div class="kernel-box"><div class="caption kernels-caption"></div><div class="tiles kernels"></div></div>
  </div>
</div>
<div class="gallery-box">
  <div class="caption gallery-caption"></div>
  <div class="gallery-scroll"><canvas class="gallery" width="720" height="30"></canvas></div>
</div>`;

const DIGIT_CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/** The pad and its views in `parent` -> {update(data, setTriggerValue), refresh(), stop()}. */
function makeInside(parent) {
  const root = parent.querySelector(".inside-root");
  root.innerHTML = TEMPLATE;
  const $ = (s) => root.querySelector(s);
  const S = { // everything the frame and the handlers share
    $, meta: null, trigger: null, model: null, snaps: null, nets: [], netIndex: -1, net: null, views: [], pre: null,
    selected: null, digit: null, best: -1, labelTouched: false, nonce: null, keeping: false, keptLabel: null,
    dirty: true, frame: 0, pendingT0: null, lastGallery: 0, galleryDue: true, alive: true, asked: new Set(),
    reading: $(".reading"), readingText: "", labelSel: $(".label"), keepBtn: $(".keep-it"),
    inputCtx: $(".input").getContext("2d"), probsCtx: $(".probs").getContext("2d"),
  };
  S.inputImage = S.inputCtx.createImageData(28, 28);
  for (let d = 0; d < 10; d++) S.labelSel.append(new Option(String(d), String(d)));
  const schedule = () => { if (!S.frame && S.alive) S.frame = requestAnimationFrame(() => tick(S)); };
  S.schedule = schedule;
  S.drawing = makeDrawing({ canvas: $(".pad"), pen: $(".pen"), undo: $(".undo"), clear: $(".clear") }, REG.strokes, {
    changed(t0, event) {
      if (S.pendingT0 === null) S.pendingT0 = t0;
      if (event && Array.isArray(window.__mnistnetTimingFromEvent) && REG.eventT0 == null) REG.eventT0 = event.timeStamp;
      S.labelTouched = false; S.keeping = false; S.keptLabel = null; // a changed drawing can be kept again
      S.dirty = true;
      schedule();
    },
    ended() { S.galleryDue = true; S.dirty = true; schedule(); },
  });
  const select = (i, u) => selectUnit(S, i, u);
  S.layers = makeLayers($(".layers"), select);
  S.gallery = makeGallery({ box: $(".gallery-box"), canvas: $(".gallery"), caption: $(".gallery-caption") }, select);
  S.detail = makeDetail({ title: $(".unit-title"), unitBody: $(".unit-body"), channelBody: $(".channel-body"),
    incomingCaption: $(".incoming-caption"), incoming: $(".incoming"), incomingTiles: $(".incoming-tiles"),
    contrib: $(".contrib"), poolBefore: $(".pool-before"), beforeCaption: $(".before-caption"), beforeMap: $(".before-map"),
    nowCaption: $(".now-caption"), channelMap: $(".channel-map"), kernelsCaption: $(".kernels-caption"),
    kernels: $(".kernels") });
  S.epochs = makeEpochs({ box: $(".epochs"), input: $(".epoch"), label: $(".epoch-label") },
    { use: (pos) => useNet(S, pos, false), want: () => want(S, "snapshots") });
  S.labelSel.addEventListener("change", () => { S.labelTouched = true; keepText(S); });
  S.keepBtn.addEventListener("click", () => {
    if (!S.digit || !S.trigger) return;
    S.nonce = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
    S.keeping = true;
    keepText(S);
    S.trigger("keep", { png: S.drawing.png(), label: Number(S.labelSel.value), shown: S.best, nonce: S.nonce });
  });
  return {
    update: (data, setTriggerValue) => update(S, data, setTriggerValue),
    refresh: () => refresh(S),
    stop() { S.alive = false; if (S.frame) cancelAnimationFrame(S.frame); },
  };
}

// The model's or its snapshots' bytes: from this page's registry, else the browser's cache,
// else asked of Python (which mounts them, hidden, on the fragment's rerun).
async function want(S, kind) {
  const id = S.meta.model, key = `${kind}:${id}`;
  if ((kind === "model" ? REG.models : REG.snaps).has(id) || S.asked.has(key)) return;
  S.asked.add(key);
  const cached = await IDB.get(key);
  if (cached) { receive(new Uint8Array(cached), true); return; }
  if (S.trigger) S.trigger("need", { kind, id, nonce: `${Date.now()}-${Math.random()}` });
}

// Python's data for the pad: the model's id, how many snapshots, the class names, whether a
// drawing can be kept (MNIST models only), the answer to the last "Keep it".
function update(S, data, trigger) {
  const first = S.meta === null;
  S.meta = data; S.trigger = trigger;
  S.classes = Array.isArray(data.classes) && data.classes.length === 10 ? data.classes.map(String) : DIGIT_CLASSES;
  S.digits = S.classes.every((c, k) => c === String(k));
  S.$(".keep").style.display = data.keep === false ? "none" : "";
  S.detail.setDataset(data.dataset || "MNIST");
  if (first) S.drawing.repaint();
  refresh(S);
  if (!S.model) S.reading.textContent = "Loading the network...";
  if (!REG.models.has(S.meta.model)) want(S, "model");
  keepText(S);
  if (S.meta.snapshots && !S.snaps) setupEpochs(S);
}

function refresh(S) {
  if (!S.meta) return;
  const m = REG.models.get(S.meta.model);
  if (m && m !== S.model) setModel(S, m);
  const s = REG.snaps.get(S.meta.model) || null;
  if (s !== S.snaps) { S.snaps = s; setupEpochs(S); }
}

function setupEpochs(S) {
  const pos = S.epochs.setup(S.meta, S.snaps);
  if (pos !== null) useNet(S, pos, true);
}

function setModel(S, m) {
  S.model = m; S.selected = null; S.netIndex = -1; S.net = null; S.snaps = null; // another model: start afresh
  S.epochs.reset();
  const h = m.header, stack = Boolean(h.stack);
  S.pre = makePreprocessor(PAD_SIZE, PAD_SIZE, h.preprocess);
  try {
    S.nets = [stack ? makeStack(h, m.weights, m.biases) : makeNetwork(h.sizes, h.mean, h.std, m.weights, m.biases)];
  } catch (e) {
    S.model = null;
    S.reading.textContent = `This network cannot run in the browser (${e.message}): reload the page.`;
    return;
  }
  S.layers.build(describeNetwork(S.nets[0], h.dead));
  S.layers.mark(null);
  const seen = `silent on every one of the 1,000 ${S.meta.dataset || "MNIST"} test images checked`;
  S.$(".legend").textContent = stack
    ? `Each small image is one channel's feature map: its value at each position. Colour = activation (dark: 0, ` +
      `bright: the layer's largest now; after tanh: blue -1, black 0, red +1); grey = dead (${seen}). ` +
      `Click a channel or a unit.`
    : `Colour = activation (dark: 0, bright: the layer's largest now); grey = dead (${seen}). Click a unit.`;
  S.$(".unit-title").textContent = stack
    ? "Click a channel of a feature map (or a unit) to see what feeds it."
    : "Click a unit in a hidden layer (or a tile below) to see what feeds it.";
  setupEpochs(S);
  useNet(S, 0, true);
}

function snapshotNet(S, k) { // decoded from float16 the first time the slider reaches it (MLPs only)
  const s = S.snaps.snapshots[k], h = S.model.header;
  if (!s.net) s.net = makeNetwork(h.sizes, h.mean, h.std, s.weights.map(halfToFloat), s.biases.map(halfToFloat));
  return s.net;
}

// Slider positions 0..n-1 are the snapshots, n is the current model (index 0 of S.nets).
function useNet(S, pos, force) {
  const n = S.snaps ? S.snaps.snapshots.length : 0;
  const idx = !S.snaps || pos >= n ? 0 : pos + 1;
  S.epochs.label(pos);
  if (idx === S.netIndex && !force) return;
  S.netIndex = idx;
  S.net = idx === 0 ? S.nets[0] : snapshotNet(S, pos);
  S.outs = S.net.acts || S.net.layers.map((l) => l.out); // what a blank pad zeroes
  S.views = describeNetwork(S.net, idx === 0 ? S.model.header.dead : S.snaps.snapshots[pos].dead);
  S.gallery.use(S.views[0]);
  showDetail(S);
  S.galleryDue = true;
  S.dirty = true;
  S.schedule();
}

function selectUnit(S, i, u) {
  S.selected = { i, u };
  S.layers.mark(S.selected);
  showDetail(S);
  S.dirty = true;
  S.schedule();
}

function showDetail(S) {
  const v = S.selected && S.net ? S.views[S.selected.i] : null;
  S.detail.show(v, v ? S.selected.u : -1);
}

// ---- the frame ------------------------------------------------------------------------------
function tick(S) {
  S.frame = 0;
  if (!S.dirty || !S.net) return;
  S.dirty = false;
  const net = S.net;
  S.digit = S.drawing.read(S.pre);
  let p = null;
  if (S.digit) {
    p = net.forward(S.digit);
    S.best = 0;
    for (let k = 1; k < 10; k++) if (p[k] > p[S.best]) S.best = k;
  } else {
    S.best = -1;
    for (const a of S.outs) a.fill(0);
  }
  paintInput(S.inputCtx, S.inputImage, S.digit);
  S.layers.paint(S.views);
  paintProbs(S.probsCtx, p, S.best, S.classes);
  const html = readingHTML(p, S.best, S.classes, S.digits);
  if (html !== S.readingText) { S.readingText = html; S.reading.innerHTML = html; }
  keepText(S);
  if (S.selected) S.detail.paint(S.views[S.selected.i], S.selected.u);
  timing(S);
  const now = performance.now();
  if (S.galleryDue || (S.drawing.drawing() && now - S.lastGallery > 250)) { // the gallery keeps up, 4 times a second
    S.galleryDue = false; S.lastGallery = now;
    S.gallery.paint(Boolean(S.digit));
  }
}

// bench/inside_frame.py's figures: from the first handler (or event) of a frame to its paint.
function timing(S) {
  const now = performance.now(), drawing = S.drawing.drawing();
  if (S.pendingT0 !== null) {
    if (Array.isArray(window.__mnistnetTiming) && drawing) window.__mnistnetTiming.push(now - S.pendingT0);
    S.pendingT0 = null;
  }
  if (REG.eventT0 != null) {
    if (Array.isArray(window.__mnistnetTimingFromEvent) && drawing) window.__mnistnetTimingFromEvent.push(now - REG.eventT0);
    REG.eventT0 = null;
  }
}

// ---- "Keep it" --------------------------------------------------------------------------------
function button(S, text, disabled) {
  if (S.keepBtn.textContent !== text) S.keepBtn.textContent = text;
  if (S.keepBtn.disabled !== disabled) S.keepBtn.disabled = disabled;
}
function keepText(S) {
  if (!S.labelTouched && S.best >= 0 && S.labelSel.value !== String(S.best)) S.labelSel.value = String(S.best);
  const answer = S.meta && S.meta.kept;
  if (S.keeping && answer && answer.nonce === S.nonce) { // Python has answered this request
    S.keeping = false;
    if (answer.ok) S.keptLabel = answer.label;
  }
  if (S.keptLabel !== null) button(S, `Kept as a ${S.keptLabel}`, true);
  else if (S.keeping) button(S, "Keeping...", true);
  else button(S, Number(S.labelSel.value) !== S.best ? "Correct it" : "Keep it", !S.digit);
}
