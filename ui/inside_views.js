// The Inside page's views, shared part: the colour scales, the description of a network's
// layers that every view draws from (describeNetwork), the 28 x 28 input, the reading and the
// ten probabilities with the model's class names.
// Needs the DOM and the networks of ui/inside_math.js (makeNetwork's or makeStack's objects);
// the layers' pictures (ui/inside_layers.js) and the detail (ui/inside_detail.js) build on it.

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

/**
 * How a layer's values become colours, one scale for the whole layer, refitted at each frame
 * in place (a frame allocates nothing): ReLU outputs from dark 0 to bright at the layer's
 * largest now (HEAT), the input's scaled pixels from their smallest to their largest; tanh
 * outputs from blue -1 through black 0 to red +1 (DIVERGE). colourOf(scale, v): a LUT offset.
 */
const makeScale = () => ({ lut: HEAT, lo: 0, k: 0 });
function fitScale(scale, act, values, n) {
  if (act === "tanh") { scale.lut = DIVERGE; scale.lo = -1; scale.k = 127.5; return scale; }
  let lo = 0, hi = 0;
  if (act === "input") {
    lo = Infinity; hi = -Infinity;
    for (let i = 0; i < n; i++) { if (values[i] < lo) lo = values[i]; if (values[i] > hi) hi = values[i]; }
  } else for (let i = 0; i < n; i++) if (values[i] > hi) hi = values[i];
  scale.lut = HEAT; scale.lo = lo; scale.k = hi > lo ? 255 / (hi - lo) : 0;
  return scale;
}
function colourOf(scale, v) {
  const i = Math.round((v - scale.lo) * scale.k);
  return 3 * (i < 0 ? 0 : i > 255 ? 255 : i);
}

// A weight w of a set whose largest size is mx: blue -, black 0, red + (a DIVERGE offset).
const weightColour = (w, mx) => 3 * Math.round(127.5 + (127.5 * w) / mx);

/**
 * One channel c of a channels-last (H, W, C) array, each value a s x s block at (ox, oy) of an
 * ImageData `img`, coloured by `scale` (fitScale's); dead: grey.
 */
function paintChannel(img, ox, oy, arr, H, W, C, c, s, scale, dead) {
  const data = img.data, stride = img.width, lut = scale.lut;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let r = DEAD[0], g = DEAD[1], b = DEAD[2];
      if (!dead) { const k = colourOf(scale, arr[(y * W + x) * C + c]); r = lut[k]; g = lut[k + 1]; b = lut[k + 2]; }
      for (let dy = 0; dy < s; dy++) {
        let p = 4 * ((oy + y * s + dy) * stride + ox + x * s);
        for (let dx = 0; dx < s; dx++, p += 4) { data[p] = r; data[p + 1] = g; data[p + 2] = b; data[p + 3] = 255; }
      }
    }
  }
}

// ---- what the views show of a network ----------------------------------------------------
const PIXELS = { type: "pixels", name: "the input", short: "the input", H: 28, W: 28, C: 1 };

/**
 * A network (makeNetwork's MLP or makeStack's layers) -> the layers the page pictures, in
 * order, each an object the views read at every frame (its arrays are the network's own):
 *   units: {type, name, short, label, n, out, act, W, b, nIn, inp, from, dead}  a dense layer
 *          after its activation (an MLP's hidden layers, a Net's dense layers but the output)
 *   maps:  {type, kind: "conv" | "pool", name, short, H, W, C, out, act, dead, from, ...}
 *          a conv layer after its activation (kernels: its (k k inC, C) W, b, k, pad, inC,
 *          inp) or a pool layer (inp: what it pools, inH, inW; source: the conv view whose
 *          channels it pools, or null)
 * from: the view (or PIXELS) feeding it; dead: a Set of units or channels dead on the data.
 * deadLists: the payload's (or a snapshot's) "dead".
 */
function describeNetwork(net, deadLists) {
  if (!net.layers) { // an MLP: hidden layer l has acts[l], fed by the pixels or hidden layer l - 1
    const views = [];
    for (let l = 0; l < net.sizes.length - 2; l++) {
      views.push({ type: "units", name: `Hidden layer ${l + 1}`, short: `hidden layer ${l + 1}`, label: `layer ${l + 1}`,
        n: net.sizes[l + 1], out: net.acts[l], act: "relu", W: net.weights[l], b: net.biases[l], nIn: net.sizes[l],
        inp: l === 0 ? net.scaled : net.acts[l - 1], from: l === 0 ? PIXELS : views[l - 1], dead: new Set(deadLists[l]) });
    }
    return views;
  }
  const views = [], L = net.layers, count = { conv: 0, pool: 0, dense: 0 };
  let from = PIXELS, conv = null;
  for (let i = 0; i < L.length - 1; i++) { // the last layer is the output: the probabilities
    const layer = L[i], next = L[i + 1];
    if (layer.kind === "conv") {
      const n = ++count.conv, [H, W, C] = layer.outShape;
      conv = { type: "maps", kind: "conv", name: `Conv layer ${n}`, short: `conv layer ${n}`, H, W, C, out: next.out,
        act: next.kind, kernels: layer.W, b: layer.b, k: layer.k, pad: layer.pad, inC: layer.inShape[2], inp: layer.inp, from,
        dead: new Set(deadLists[i + 1]) };
      views.push(conv); from = conv;
    } else if (layer.kind === "pool") {
      const n = ++count.pool, [H, W, C] = layer.outShape;
      const v = { type: "maps", kind: "pool", name: `Pool layer ${n}`, short: `pool layer ${n}`, H, W, C, out: layer.out,
        act: from.type === "pixels" ? "input" : from.act, inp: layer.inp, inH: layer.inShape[0], inW: layer.inShape[1],
        from, source: conv, dead: new Set(deadLists[i]) };
      views.push(v); from = v;
    } else if (layer.kind === "dense") {
      const n = ++count.dense;
      const v = { type: "units", name: `Dense layer ${n}`, short: `dense layer ${n}`, label: `dense layer ${n}`,
        n: layer.fanOut, out: next.out, act: next.kind, W: layer.W, b: layer.b, nIn: layer.fanIn, inp: layer.inp,
        from, dead: new Set(deadLists[i + 1]) };
      views.push(v); from = v;
    }
  }
  return views;
}

// ---- the input, the reading, the probabilities --------------------------------------------
function paintInput(ctx, img, digit) {
  const d = img.data;
  for (let i = 0; i < 784; i++) {
    const v = digit ? digit[i] : 0;
    d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v; d[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// The ten probabilities as bars, each named by its class ("0".."9", or "T-shirt/top"..).
function paintProbs(ctx, p, best, classes) {
  const W = ctx.canvas.width, H = ctx.canvas.height, rowH = 17;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px sans-serif";
  ctx.textBaseline = "middle";
  let name = 0;
  for (const c of classes) name = Math.max(name, ctx.measureText(c).width);
  const x0 = Math.ceil(name) + 6, bar = W - x0 - 60;
  for (let k = 0; k < 10; k++) {
    const y = k * rowH;
    ctx.fillStyle = "#888"; ctx.fillText(classes[k], 2, y + rowH / 2);
    ctx.fillStyle = "rgba(128,128,128,0.2)"; ctx.fillRect(x0, y + 3, bar, rowH - 6);
    if (p) {
      ctx.fillStyle = k === best ? "#ff4b4b" : "#5b8def";
      ctx.fillRect(x0, y + 3, bar * p[k], rowH - 6);
      ctx.fillStyle = "#888"; ctx.fillText(`${(100 * p[k]).toFixed(1)}%`, x0 + bar + 6, y + rowH / 2);
    }
  }
}

const escapeHTML = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The sentence under the input: what the network reads, or an invitation to draw. A digit
// model's answer is #inside-digit, another model's #inside-class (as on the Draw page).
function readingHTML(p, best, classes, digits) {
  if (!p) {
    return digits ? "Draw a digit on the black square: the network reads it as you draw."
      : "Draw one of its ten classes as a white shape on the black square: the network reads it as you draw.";
  }
  const id = digits ? "inside-digit" : "inside-class";
  return `The network reads <span id="${id}">${escapeHTML(classes[best])}</span> ` +
    `<span class="conf">${(100 * p[best]).toFixed(1)}%</span>`;
}
