// The Inside page's pictures of the layers, painted at every frame: each layer of
// describeNetwork (ui/inside_views.js) as a strip of units (one cell per unit) or as a grid of
// feature maps (one small image per channel, scaled up, one colour scale per layer); and the
// gallery of the first hidden layer's weights over the pixels (a network whose first layer is
// dense, as an MLP's), ordered by how hard the drawing drives each unit.
// Needs the DOM and ui/inside_views.js (DIVERGE, DEAD, makeScale, fitScale, colourOf, paintChannel,
// weightColour, PIXELS). A click calls onSelect(view index, unit or channel).

/** box: the element the layers go in. -> {build(views), paint(views), mark(selected)}. */
function makeLayers(box, onSelect) {
  let items = [], selected = null;
  function build(views) { // once per model: snapshots share its shapes
    box.innerHTML = "";
    items = views.map((v, i) => (v.type === "units" ? unitStrip(box, v, i, onSelect) : mapGrid(box, v, i, onSelect)));
  }
  function mark(sel) {
    selected = sel;
    for (const it of items) if (it.type === "units") it.mark(sel && sel.i === it.i ? sel.u : -1);
  }
  function paint(views) {
    items.forEach((it, i) => it.paint(views[i], selected && selected.i === i ? selected.u : -1));
  }
  return { build, paint, mark };
}

function layerBox(box, html) {
  const wrap = document.createElement("div");
  wrap.className = "layer";
  wrap.innerHTML = `<div class="caption"></div><div class="grid-wrap">${html}<div class="mark"></div></div>`;
  box.append(wrap);
  return wrap;
}

// A dense layer: one cell per unit, dark 0 to bright at the layer's largest now; grey: dead.
function unitStrip(box, v0, i, onSelect) {
  const n = v0.n, cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols);
  const wrap = layerBox(box, `<canvas class="grid" width="${cols}" height="${rows}"></canvas>`);
  const canvas = wrap.querySelector("canvas"), ctx = canvas.getContext("2d"), img = ctx.createImageData(cols, rows);
  const cell = Math.max(3, Math.min(24, Math.floor(200 / cols)));
  canvas.style.width = `${cols * cell}px`; canvas.style.height = `${rows * cell}px`;
  canvas.dataset.units = String(n);
  const caption = wrap.querySelector(".caption"), markEl = wrap.querySelector(".mark"), scale = makeScale();
  let text = "";
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect();
    const u = Math.floor((e.clientY - r.top) / cell) * cols + Math.floor((e.clientX - r.left) / cell);
    if (u < n) onSelect(i, u);
  });
  function mark(u) {
    markEl.style.display = u >= 0 ? "block" : "none";
    if (u < 0) return;
    markEl.style.left = `${(u % cols) * cell - 1}px`; markEl.style.top = `${Math.floor(u / cols) * cell - 1}px`;
    markEl.style.width = markEl.style.height = `${cell}px`;
  }
  function paint(v) {
    const a = v.out, data = img.data, lut = fitScale(scale, v.act, a, n).lut;
    let active = 0;
    for (let j = 0; j < n; j++) if (a[j] > 0) active++;
    for (let j = 0; j < cols * rows; j++) {
      const p = 4 * j;
      if (j >= n) { data[p + 3] = 0; continue; }
      if (v.dead.has(j)) { data[p] = DEAD[0]; data[p + 1] = DEAD[1]; data[p + 2] = DEAD[2]; }
      else { const c = colourOf(scale, a[j]); data[p] = lut[c]; data[p + 1] = lut[c + 1]; data[p + 2] = lut[c + 2]; }
      data[p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const t = v.act === "tanh" ? `${v.name}: ${n} units (tanh), ${active} positive`
      : `${v.name}: ${n} units, ${active} active, ${v.dead.size} dead`;
    if (t !== text) { text = t; caption.textContent = t; }
  }
  return { type: "units", i, paint, mark };
}

// A conv or pool layer: one tile per channel (its H x W map, each value a block of s x s
// pixels), 8 to a row; the selected channel outlined. Shrinks to a phone's width (CSS): a
// click is scaled back to canvas pixels.
const MAP_GAP = 4;
function mapGrid(box, v0, i, onSelect) {
  const { H, W, C } = v0, target = C <= 16 ? 56 : C <= 64 ? 40 : 28;
  const s = Math.max(1, Math.round(target / Math.max(H, W))), tw = W * s, th = H * s;
  const cols = Math.min(C, 8), rows = Math.ceil(C / cols);
  const width = cols * (tw + MAP_GAP) - MAP_GAP, height = rows * (th + MAP_GAP) - MAP_GAP;
  const wrap = layerBox(box, `<canvas class="maps" width="${width}" height="${height}"></canvas>`);
  const canvas = wrap.querySelector("canvas"), ctx = canvas.getContext("2d"), img = ctx.createImageData(width, height);
  Object.assign(canvas.dataset, { kind: v0.kind, channels: String(C), layer: v0.name, size: `${H}x${W}` });
  canvas.style.width = `${width}px`;
  const caption = wrap.querySelector(".caption"), scale = makeScale();
  let text = "";
  canvas.addEventListener("click", (e) => {
    const r = canvas.getBoundingClientRect(), k = canvas.width / r.width;
    const col = Math.floor(((e.clientX - r.left) * k) / (tw + MAP_GAP));
    const row = Math.floor(((e.clientY - r.top) * k) / (th + MAP_GAP));
    const c = row * cols + Math.min(col, cols - 1);
    if (c < C) onSelect(i, c);
  });
  function paint(v, selected) {
    fitScale(scale, v.act, v.out, v.out.length);
    let active = 0;
    for (let c = 0; c < C; c++) {
      paintChannel(img, (c % cols) * (tw + MAP_GAP), Math.floor(c / cols) * (th + MAP_GAP), v.out, H, W, C, c, s, scale,
        v.dead.has(c));
      for (let p = c; p < v.out.length; p += C) if (v.out[p] > 0) { active++; break; }
    }
    ctx.putImageData(img, 0, 0);
    if (selected >= 0) {
      ctx.strokeStyle = "#ff4b4b"; ctx.lineWidth = 3; // in the gap around the tile, on a light or dark page
      const x = (selected % cols) * (tw + MAP_GAP), y = Math.floor(selected / cols) * (th + MAP_GAP);
      ctx.strokeRect(x - 1.5, y - 1.5, tw + 3, th + 3);
    }
    const what = v.kind === "pool" ? `2 x 2 max pooling of ${v.from.short}`
      : `${v.act === "tanh" ? "tanh" : "ReLU"} of ${C} ${v.k} x ${v.k} convolutions${v.pad ? " (zero-padded)" : ""}`;
    const counts = v.act === "relu" ? `, ${active} active, ${v.dead.size} dead` : "";
    const t = `${v.name}: ${C} channels of ${H} x ${W}, ${what}${counts}`;
    if (t !== text) { text = t; caption.textContent = t; }
  }
  return { type: "maps", i, paint };
}

// ---- the gallery: every first-layer unit's weights over the pixels as a 28 x 28 tile ------
const TILE = 28, GAP = 2, GCOLS = 24;

/** els = {box, canvas, caption}. -> {use(view or null), paint(drawn: a digit is read)}. */
function makeGallery(els, onSelect) {
  const ctx = els.canvas.getContext("2d");
  let view = null, atlas = null, order = null, byDrive = null;
  function use(v) { // the first layer's view when it is dense over the pixels, else none
    view = v && v.type === "units" && v.from === PIXELS ? v : null;
    els.box.style.display = view ? "" : "none";
    if (!view) return;
    atlas = makeAtlas(view);
    if (!order || order.length !== view.n) order = new Int32Array(view.n);
    const a = view.out;
    byDrive = (x, y) => a[y] - a[x];
  }
  function paint(drawn) {
    if (!view) return;
    const units = view.n, rows = Math.ceil(units / GCOLS), h = rows * (TILE + GAP);
    if (els.canvas.height !== h) els.canvas.height = h;
    for (let u = 0; u < units; u++) order[u] = u;
    if (drawn) order.sort(byDrive);
    ctx.clearRect(0, 0, els.canvas.width, h);
    for (let k = 0; k < units; k++) {
      const u = order[k];
      ctx.drawImage(atlas, (u % 32) * TILE, Math.floor(u / 32) * TILE, TILE, TILE,
        (k % GCOLS) * (TILE + GAP), Math.floor(k / GCOLS) * (TILE + GAP), TILE, TILE);
    }
    els.caption.textContent = drawn
      ? `All ${units} first-layer units' weights (red +, blue -), the ones this drawing drives hardest first`
      : `All ${units} first-layer units' weights (red +, blue -); draw to order them by how hard your digit drives them`;
  }
  els.canvas.addEventListener("click", (e) => {
    const r = els.canvas.getBoundingClientRect(), s = els.canvas.width / r.width; // shrunk on a phone
    const k = Math.floor(((e.clientY - r.top) * s) / (TILE + GAP)) * GCOLS
      + Math.floor(((e.clientX - r.left) * s) / (TILE + GAP));
    if (view && k < view.n) onSelect(0, order[k]);
  });
  return { use, paint };
}

function makeAtlas(v) { // every unit's weights as a 28x28 tile, 32 to a row, once per network
  const units = v.n, W = v.W;
  const c = document.createElement("canvas");
  c.width = TILE * 32; c.height = TILE * Math.ceil(units / 32);
  const cx = c.getContext("2d"), img = cx.createImageData(c.width, c.height);
  for (let u = 0; u < units; u++) {
    let mx = 1e-12;
    for (let i = 0; i < 784; i++) mx = Math.max(mx, Math.abs(W[i * units + u]));
    const ox = (u % 32) * TILE, oy = Math.floor(u / 32) * TILE;
    for (let i = 0; i < 784; i++) {
      const k = weightColour(W[i * units + u], mx);
      const p = 4 * ((oy + Math.floor(i / 28)) * c.width + ox + (i % 28));
      img.data[p] = DIVERGE[k]; img.data[p + 1] = DIVERGE[k + 1]; img.data[p + 2] = DIVERGE[k + 2]; img.data[p + 3] = 255;
    }
  }
  cx.putImageData(img, 0, 0);
  return c;
}
