// The Inside page's detail of what the visitor clicked, under the layers:
// - a unit of a dense layer: its incoming weights (one per pixel as a 28 x 28 image, one small
//   image per channel of the feature maps feeding it, or bars for a dense layer's units) and
//   the largest contributions to its value now;
// - a channel of a conv layer: its map now and its kernels (one k x k per input channel, as
//   small images, the channels that feed it most first, by the kernel's absolute weight);
// - a channel of a pool layer: the map before and after 2 x 2 max pooling, and the kernels
//   of the conv channel it pools.
// Needs the DOM and ui/inside_views.js (DIVERGE, makeScale, fitScale, paintChannel, weightColour,
// PIXELS, describeNetwork's views). show() when the selection or the network
// changes (weights), paint() at every frame (values).

/** els: the detail's elements (see ui/inside.js's TEMPLATE). -> {show(view, u), paint(view, u), setDataset(name)}. */
function makeDetail(els) {
  const contribCtx = els.contrib.getContext("2d");
  let dataset = "MNIST";
  const setDataset = (name) => { dataset = name; };

  function show(v, u) {
    els.unitBody.style.display = v && v.type === "units" ? "flex" : "none";
    els.channelBody.style.display = v && v.type === "maps" ? "flex" : "none";
    if (!v) { els.incomingCaption.textContent = ""; return; }
    if (v.type === "units") showIncoming(els, v, u);
    else showChannel(els, v, u);
  }
  function paint(v, u) {
    if (!v) return;
    if (v.type === "units") paintUnit(els, contribCtx, v, u, dataset);
    else if (v.kind === "conv") paintConv(els, v, u, dataset);
    else paintPool(els, v, u, dataset);
  }
  return { show, paint, setDataset };
}

// ---- a unit: incoming weights and contributions -------------------------------------------
function showIncoming(els, v, u) {
  const { W, nIn, n: nOut, from } = v, cap = els.incomingCaption, incoming = els.incoming;
  let mx = 1e-12;
  for (let i = 0; i < nIn; i++) mx = Math.max(mx, Math.abs(W[i * nOut + u]));
  els.incomingTiles.innerHTML = "";
  incoming.style.display = from.type === "maps" ? "none" : "";
  if (from === PIXELS) {
    incoming.width = 28; incoming.height = 28; incoming.className = "incoming image";
    const c = incoming.getContext("2d"), img = c.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const k = weightColour(W[i * nOut + u], mx);
      img.data.set([DIVERGE[k], DIVERGE[k + 1], DIVERGE[k + 2], 255], 4 * i);
    }
    c.putImageData(img, 0, 0);
    cap.textContent = "Its incoming weights, one per pixel (red +, blue -)";
  } else if (from.type === "maps") { // the flattened maps: (y, x, c) order, channels last
    const { H, W: Wd, C } = from, w = new Float64Array(H * Wd);
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < H * Wd; p++) w[p] = W[(p * C + c) * nOut + u];
      tile(els.incomingTiles, w, H, Wd, mx, `ch ${c}`, "weights");
    }
    cap.textContent = `Its ${nIn} incoming weights, one small image per channel of ${from.short} (red +, blue -)`;
  } else {
    incoming.width = 420; incoming.height = 120; incoming.className = "incoming bars";
    const c = incoming.getContext("2d"), bw = 420 / nIn;
    c.clearRect(0, 0, 420, 120);
    for (let i = 0; i < nIn; i++) {
      const w = W[i * nOut + u], h = (56 * Math.abs(w)) / mx;
      c.fillStyle = w >= 0 ? "#eb4632" : "#285adc";
      c.fillRect(i * bw, w >= 0 ? 60 - h : 60, Math.max(bw - (bw > 3 ? 1 : 0), 0.5), h);
    }
    cap.textContent = `Its ${nIn} incoming weights from ${from.short} (red +, blue -)`;
  }
}

// A small image of h x w weights (one scale mx for the set it belongs to), about `size` CSS
// pixels wide, with a caption.
function tile(box, values, h, w, mx, caption, cls, size = 44) {
  const fig = document.createElement("figure");
  fig.className = `tile ${cls}`;
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  const scale = Math.max(2, Math.round(size / Math.max(h, w)));
  canvas.style.width = `${w * scale}px`; canvas.style.height = `${h * scale}px`;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    const k = weightColour(values[p], mx);
    img.data.set([DIVERGE[k], DIVERGE[k + 1], DIVERGE[k + 2], 255], 4 * p);
  }
  ctx.putImageData(img, 0, 0);
  const label = document.createElement("figcaption");
  label.textContent = caption;
  fig.append(canvas, label);
  box.append(fig);
}

const TOP = 8, topIdx = new Int32Array(TOP), topVal = new Float64Array(TOP);
function inputName(from, i) {
  if (from === PIXELS) return `pixel (${Math.floor(i / 28)}, ${i % 28})`;
  if (from.type === "maps") { // channels last: i = (y W + x) C + c
    return `ch ${i % from.C} at (${Math.floor(i / (from.W * from.C))}, ${Math.floor(i / from.C) % from.W})`;
  }
  return `unit ${i} of ${from.label}`;
}
function paintUnit(els, c, v, u, dataset) {
  const { W, nIn, n: nOut, inp: x } = v, b = v.b[u];
  let pre = b, k = 0;
  for (let i = 0; i < nIn; i++) {
    const contribution = x[i] * W[i * nOut + u];
    pre += contribution;
    if (k < TOP || Math.abs(contribution) > Math.abs(topVal[k - 1])) { // keep the TOP largest by size, sorted
      let j = k < TOP ? k++ : TOP - 1;
      while (j > 0 && Math.abs(topVal[j - 1]) < Math.abs(contribution)) {
        topVal[j] = topVal[j - 1]; topIdx[j] = topIdx[j - 1]; j--;
      }
      topVal[j] = contribution; topIdx[j] = i;
    }
  }
  const act = v.out[u], dead = v.dead.has(u) ? `, dead on ${dataset}` : "";
  els.title.textContent = v.act === "tanh"
    ? `${v.name}, unit ${u}: ${act.toFixed(3)} = tanh(${pre.toFixed(3)})${dead} = tanh(bias ${b.toFixed(3)} + ` +
      `${nIn} contributions)`
    : `${v.name}, unit ${u}: ${act.toFixed(3)}` + (act > 0 ? "" : ` (ReLU of ${pre.toFixed(3)})`) + dead +
      ` = ReLU(bias ${b.toFixed(3)} + ${nIn} contributions)`;
  c.clearRect(0, 0, 420, 190);
  c.font = "12px sans-serif"; c.textBaseline = "middle";
  let mx = 1e-12;
  for (let j = 0; j < k; j++) mx = Math.max(mx, Math.abs(topVal[j]));
  for (let j = 0; j < k; j++) {
    const y = j * 23 + 4, val = topVal[j], w = (120 * Math.abs(val)) / mx;
    c.fillStyle = "#888"; c.fillText(inputName(v.from, topIdx[j]), 0, y + 9);
    c.fillStyle = val >= 0 ? "#eb4632" : "#285adc";
    c.fillRect(val >= 0 ? 250 : 250 - w, y + 2, w, 15);
    c.fillStyle = "#888"; c.fillText(`${val >= 0 ? "+" : ""}${val.toFixed(3)}`, 375, y + 9);
  }
}

// ---- a channel: its kernels, its map, pooling ---------------------------------------------
function showChannel(els, v, u) {
  els.kernels.innerHTML = "";
  els.poolBefore.style.display = v.kind === "pool" ? "" : "none";
  const conv = v.kind === "conv" ? v : v.source;
  if (!conv) { els.kernelsCaption.textContent = `It pools channel ${u} of the input; no kernel feeds it.`; return; }
  const { kernels: K, k, inC, C } = conv, kk = k * k;
  // Kernel c of output channel u: rows (i k + j) inC + c of the (k k inC, C) matrix, column u.
  const size = new Float64Array(inC), order = [];
  let mx = 1e-12, total = 1e-12;
  for (let c = 0; c < inC; c++) {
    for (let r = 0; r < kk; r++) { const w = Math.abs(K[(r * inC + c) * C + u]); size[c] += w; mx = Math.max(mx, w); }
    total += size[c];
    order.push(c);
  }
  order.sort((a, b) => size[b] - size[a]);
  const w = new Float64Array(kk);
  for (const c of order) {
    for (let r = 0; r < kk; r++) w[r] = K[(r * inC + c) * C + u];
    tile(els.kernels, w, k, k, mx, inC === 1 ? `${k} x ${k}` : `ch ${c} ${Math.round((100 * size[c]) / total)}%`, "kernel",
      inC === 1 ? 96 : 44); // a lone kernel shown large
  }
  const pools = v.kind === "pool" ? `It pools channel ${u} of ${conv.short}, whose ` : "Its ";
  if (inC === 1) {
    els.kernelsCaption.textContent = `${pools}one ${k} x ${k} kernel over ${conv.from.short} (red +, blue -): its map ` +
      `at each position is this kernel laid over the ${k} x ${k} values there, plus the bias, then ${actName(conv)}.`;
  } else {
    const top = order.slice(0, 3).map((c) => `${c} (${Math.round((100 * size[c]) / total)}%)`).join(", ");
    els.kernelsCaption.textContent = `${pools}${inC} kernels of ${k} x ${k}, one per channel of ${conv.from.short}, ` +
      `the channels that feed it most first, by their kernel's absolute weight (red +, blue -). Fed most by ` +
      `channels ${top}.`;
  }
}
const actName = (v) => (v.act === "tanh" ? "tanh" : "ReLU");

const DETAIL_SCALE = makeScale(), RANGE = { lo: 0, hi: 0, on: 0 }; // refilled at each frame

// The channel's map on a canvas of its own, each value a block of s x s pixels.
function paintMap(canvas, arr, H, W, C, c, s, scale, dead) {
  if (canvas.width !== W * s || canvas.height !== H * s) { canvas.width = W * s; canvas.height = H * s; canvas._img = null; }
  const ctx = canvas.getContext("2d");
  const img = canvas._img || (canvas._img = ctx.createImageData(W * s, H * s));
  paintChannel(img, 0, 0, arr, H, W, C, c, s, scale, dead);
  ctx.putImageData(img, 0, 0);
  return ctx;
}
function channelRange(arr, C, c) { // -> RANGE: channel c's smallest, largest, how many positive
  let lo = Infinity, hi = -Infinity, on = 0;
  for (let p = c; p < arr.length; p += C) { const a = arr[p]; if (a < lo) lo = a; if (a > hi) hi = a; if (a > 0) on++; }
  RANGE.lo = lo; RANGE.hi = hi; RANGE.on = on;
  return RANGE;
}

function paintConv(els, v, u, dataset) {
  const { H, W, C } = v, scale = fitScale(DETAIL_SCALE, v.act, v.out, v.out.length), dead = v.dead.has(u);
  const s = Math.max(1, Math.floor(144 / Math.max(H, W)));
  paintMap(els.channelMap, v.out, H, W, C, u, s, scale, dead);
  els.nowCaption.textContent = `Its map now (${H} x ${W}), coloured as in the grid`;
  const { lo, hi, on } = channelRange(v.out, C, u);
  const now = v.act === "tanh" ? `values ${lo.toFixed(3)} to ${hi.toFixed(3)} now`
    : `largest ${hi.toFixed(3)} now, active at ${on} of ${H * W} positions`;
  els.title.textContent = `${v.name}, channel ${u}: ${now}${dead ? `, dead on ${dataset}` : ""} = ${actName(v)}(bias ` +
    `${v.b[u].toFixed(3)} + ${v.inC} kernel${v.inC > 1 ? "s" : ""} of ${v.k} x ${v.k} over ${v.from.short}` +
    `${v.pad ? ", zero-padded" : ""})`;
}

function paintPool(els, v, u, dataset) {
  const { H, W, C, inH, inW } = v, scale = fitScale(DETAIL_SCALE, v.act, v.out, v.out.length);
  const s = Math.max(1, Math.floor(144 / Math.max(inH, inW)));
  const before = paintMap(els.beforeMap, v.inp, inH, inW, C, u, s, scale, false);
  before.strokeStyle = "rgba(255, 255, 255, 0.35)"; before.lineWidth = 1;
  before.beginPath();
  for (let x = 2; x < 2 * W; x += 2) { before.moveTo(x * s + 0.5, 0); before.lineTo(x * s + 0.5, 2 * H * s); }
  for (let y = 2; y < 2 * H; y += 2) { before.moveTo(0, y * s + 0.5); before.lineTo(2 * W * s, y * s + 0.5); }
  before.stroke();
  paintMap(els.channelMap, v.out, H, W, C, u, 2 * s, scale, v.dead.has(u));
  els.beforeCaption.textContent = `Before: ${v.from.short}, channel ${u} (${inH} x ${inW}), in 2 x 2 blocks`;
  els.nowCaption.textContent = `After 2 x 2 max pooling (${H} x ${W}): each value the largest of its block`;
  const { hi } = channelRange(v.out, C, u);
  els.title.textContent = `${v.name}, channel ${u}: the largest of each 2 x 2 block of ${v.from.short}'s channel ${u} ` +
    `(${inH} x ${inW} -> ${H} x ${W}); largest ${hi.toFixed(3)} now${v.dead.has(u) ? `, dead on ${dataset}` : ""}`;
}
