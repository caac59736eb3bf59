// The Inside page's math, in the browser: the payload decoder, the drawing's preprocessing and
// the networks' forward passes (a dense ReLU MLP: makeNetwork; a stack of layers: makeStack).
// Pure functions and objects whose typed arrays are allocated once (a frame allocates nothing).
// Needs nothing from the page: Node loads this file alone in tests/test_inside_js.py, which
// holds it to its Python twins; ui/inside.py puts it first in the page's one module (before
// ui/inside_pad.js, the views and the entry, ui/inside.js).

// ---- payload (Python twin: ui/inside.py::model_payload, snapshot_payload) ------------------
// "MNIN", uint32 version, uint32 header length, the JSON header (padded to 4 bytes), the body:
// arrays at the byte offsets the header names, float32 (weights) or float16 (snapshots).
// Version 2 adds a layer stack's "net" (its line) and "stack" (each layer's kind and shapes)
// to the header; an MLP's header is as in version 1, so a version 1 payload kept by the
// browser (IndexedDB) still reads.
export const PAYLOAD_VERSION = 2;
const READABLE_VERSIONS = [1, 2];

export function decodePayload(bytes) {
  // `bytes` arrives as a Uint8Array that may start at any offset: one copy aligns it.
  const buf = new ArrayBuffer(bytes.byteLength);
  const u8 = new Uint8Array(buf);
  u8.set(bytes);
  const magic = String.fromCharCode(u8[0], u8[1], u8[2], u8[3]);
  const dv = new DataView(buf);
  if (magic !== "MNIN") throw new Error("not an mnistnet payload");
  const version = dv.getUint32(4, true);
  if (!READABLE_VERSIONS.includes(version)) {
    throw new Error(`payload version ${version}, expected ${READABLE_VERSIONS.join(" or ")}: reload the page`);
  }
  const hlen = dv.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(u8.subarray(12, 12 + hlen)));
  const body = 12 + hlen;
  const view = (spec) => (spec.dtype === "float16"
    ? new Uint16Array(buf, body + spec.offset, spec.count)
    : new Float32Array(buf, body + spec.offset, spec.count));
  const layers = (specs) => ({ weights: specs.map((s) => view(s.w)), biases: specs.map((s) => view(s.b)) });
  const out = { header, ...(header.layers ? layers(header.layers) : {}) };
  out.snapshots = (header.snapshots || []).map((s) => ({ epoch: s.epoch, dead: s.dead, ...layers(s.layers) }));
  return out;
}

let HALF = null; // float16 bit pattern -> float32 value, built on first use
export function halfToFloat(src) {
  if (HALF === null) {
    HALF = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      HALF[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = HALF[src[i]];
  return out;
}

// ---- preprocessing (Python twin: mnistnet/drawing.py::preprocess_drawing) ----------------
const LUM_R = Math.fround(0.299), LUM_G = Math.fround(0.587), LUM_B = Math.fround(0.114);

function roundHalfEven(v) { // Python's round() and numpy's rint
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function lanczos(x) { // Pillow's Resample.c: a sinc windowed by a sinc, support 3
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}
function sinc(x) {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

// Pillow's precompute_coeffs: for each output pixel its first input pixel, its count and its
// normalised kernel (ksize slots each). Returns ksize.
function precomputeCoeffs(inSize, outSize, bounds, kk) {
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = 3.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    const k0 = xx * ksize;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * ss);
      kk[k0 + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0.0) kk[k0 + x] /= ww;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return ksize;
}

const R8 = new Float32Array(8);
// numpy's pairwise float32 sum of a[off .. off+n) (add.reduce: the first item, then the rest).
function pairwise(a, off, n) {
  if (n < 8) {
    let r = -0.0;
    for (let i = 0; i < n; i++) r = Math.fround(r + a[off + i]);
    return r;
  }
  if (n <= 128) {
    const r = R8; // float32 slots: each store rounds as numpy's float32 accumulators do
    for (let j = 0; j < 8; j++) r[j] = a[off + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = Math.fround(r[j] + a[off + i + j]);
    const f = Math.fround;
    let res = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; i < n; i++) res = f(res + a[off + i]);
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return Math.fround(pairwise(a, off, n2) + pairwise(a, off + n2, n - n2));
}
function floatSum(a, off, n) { return n === 0 ? 0 : Math.fround(a[off] + pairwise(a, off + 1, n - 1)); }

/**
 * A preprocessor for canvases of width x height pixels; cfg = {box, field, centre, ink_level,
 * min_ink_fraction} from the payload header (mnistnet/drawing.py's constants).
 * run(rgba, rx, ry, rw, rh): rgba holds the region (rx, ry, rw, rh) of the canvas as RGBA bytes
 * (getImageData of that region); every pixel outside it is opaque black (the pad guarantees it).
 * Returns a (28 * 28) Uint8Array owned by the preprocessor, or null for a blank drawing.
 */
export function makePreprocessor(width, height, cfg) {
  const { box: BOX, field: FIELD, centre: CENTRE, ink_level: INK, min_ink_fraction: MINF } = cfg;
  const n = width * height;
  const ink = new Float32Array(n);
  const maxK = Math.ceil(3.0 * Math.max(width, height)) * 2 + 1;
  const kkH = new Float64Array(BOX * maxK), kkV = new Float64Array(BOX * maxK);
  const bH = new Int32Array(2 * BOX), bV = new Int32Array(2 * BOX);
  const temp = new Float32Array(height * BOX); // horizontal pass: (rows used, nw)
  const small = new Float32Array(BOX * BOX), rowSum = new Float32Array(BOX), colSum = new Float32Array(BOX);
  const field = new Float32Array(FIELD * FIELD), moved = new Float32Array(FIELD * FIELD);
  const out = new Uint8Array(FIELD * FIELD);

  function inkOf(rgba, rx, ry, rw, rh) {
    // ink_intensity, over the whole canvas: the region, and opaque black (lum 0) elsewhere.
    const outside = n - rw * rh;
    let below = outside, maxBelow = outside ? 0 : -Infinity, minAbove = Infinity, minAlpha = 255;
    let inkSum = 0, inkCount = 0;
    for (let y = 0; y < rh; y++) {
      for (let x = 0; x < rw; x++) {
        const p = 4 * (y * rw + x);
        const lum = Math.fround(rgba[p] * LUM_R + rgba[p + 1] * LUM_G + rgba[p + 2] * LUM_B);
        ink[(ry + y) * width + rx + x] = lum;
        if (lum < 128) { below++; if (lum > maxBelow) maxBelow = lum; } else if (lum < minAbove) minAbove = lum;
        const a = rgba[p + 3];
        if (a < minAlpha) minAlpha = a;
        if (a > 127.5) { inkSum += lum; inkCount++; }
      }
    }
    if (minAlpha < 255) { // a transparent background: alpha carries the ink
      const bright = inkCount > 0 && inkSum / inkCount > 127;
      for (let y = 0; y < rh; y++) {
        for (let x = 0; x < rw; x++) {
          const i = (ry + y) * width + rx + x, a = Math.fround(rgba[4 * (y * rw + x) + 3] / 255);
          ink[i] = Math.fround(a * (bright ? ink[i] : Math.fround(255 - ink[i])));
        }
      }
      if (outside) fillOutside(rx, ry, rw, rh, bright ? 0 : 255);
      return bright ? 0 : 255;
    }
    // The median of n values is below 128 when more than half are, or (n even) when the two
    // middle values average below it.
    const half = n >> 1;
    let darkBackground;
    if (n % 2 === 1) darkBackground = below > half;
    else if (below > half) darkBackground = true;
    else if (below < half) darkBackground = false;
    else darkBackground = (maxBelow + minAbove) / 2 < 128;
    if (!darkBackground) {
      for (let y = 0; y < rh; y++) {
        for (let x = 0; x < rw; x++) { const i = (ry + y) * width + rx + x; ink[i] = Math.fround(255 - ink[i]); }
      }
    }
    // Outside the region: lum 0, so ink 0 on a dark background, 255 on a light one.
    if (outside) fillOutside(rx, ry, rw, rh, darkBackground ? 0 : 255);
    return darkBackground ? 0 : 255;
  }

  function fillOutside(rx, ry, rw, rh, v) {
    for (let y = 0; y < height; y++) {
      const inRows = y >= ry && y < ry + rh;
      for (let x = 0; x < width; x++) if (!inRows || x < rx || x >= rx + rw) ink[y * width + x] = v;
    }
  }

  function resize(y0, x0, h, w, nh, nw) {
    // Image.fromarray(crop, "F").resize((nw, nh), LANCZOS): Pillow's two passes, float32 between.
    const needH = nw !== w, needV = nh !== h;
    const ksV = precomputeCoeffs(h, nh, bV, kkV);
    const first = bV[0], last = bV[2 * nh - 2] + bV[2 * nh - 1];
    let src = ink, srcW = width, srcX = x0, srcY = y0, cols = w;
    if (needH) {
      const ksH = precomputeCoeffs(w, nw, bH, kkH);
      for (let yy = 0; yy < last - first; yy++) {
        const row = (y0 + first + yy) * width + x0;
        for (let xx = 0; xx < nw; xx++) {
          const xmin = bH[2 * xx], xmax = bH[2 * xx + 1], k0 = xx * ksH;
          let ss = 0.0;
          for (let x = 0; x < xmax; x++) ss += ink[row + x + xmin] * kkH[k0 + x];
          temp[yy * nw + xx] = ss;
        }
      }
      src = temp; srcW = nw; srcX = 0; srcY = -first; cols = nw;
    }
    for (let yy = 0; yy < nh; yy++) {
      const ymin = bV[2 * yy], ymax = bV[2 * yy + 1], k0 = yy * ksV;
      for (let xx = 0; xx < cols; xx++) {
        if (!needV) { small[yy * nw + xx] = src[(srcY + first + yy) * srcW + srcX + xx]; continue; }
        let ss = 0.0;
        for (let y = 0; y < ymax; y++) ss += src[(srcY + y + ymin) * srcW + srcX + xx] * kkV[k0 + y];
        small[yy * nw + xx] = ss;
      }
    }
  }

  function run(rgba, rx, ry, rw, rh) {
    const outsideInk = inkOf(rgba, rx, ry, rw, rh);
    // The ink box: when the rest of the canvas is background, only the region can hold ink.
    const only = outsideInk < INK;
    const sy = only ? ry : 0, ey = only ? ry + rh : height, sx = only ? rx : 0, ex = only ? rx + rw : width;
    let count = 0, top = height, bottom = -1, left = width, right = -1;
    for (let y = sy; y < ey; y++) {
      for (let x = sx; x < ex; x++) {
        if (ink[y * width + x] >= INK) {
          count++;
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    if (count < Math.max(3, MINF * n)) return null;
    const h = bottom - top + 1, w = right - left + 1;
    const scale = BOX / Math.max(h, w);
    const nh = Math.max(1, roundHalfEven(h * scale)), nw = Math.max(1, roundHalfEven(w * scale));
    resize(top, left, h, w, nh, nw);
    const m = nh * nw;
    let peak = -Infinity;
    for (let i = 0; i < m; i++) { if (small[i] < 0) small[i] = 0; if (small[i] > peak) peak = small[i]; }
    if (!(peak > 0)) return null;
    const gain = Math.fround(255 / peak); // thin pens give faint strokes once shrunk
    for (let i = 0; i < m; i++) small[i] = Math.fround(small[i] * gain);
    const total = floatSum(small, 0, m);
    for (let y = 0; y < nh; y++) rowSum[y] = floatSum(small, y * nw, nw);
    for (let x = 0; x < nw; x++) {
      let s = small[x];
      for (let y = 1; y < nh; y++) s = Math.fround(s + small[y * nw + x]);
      colSum[x] = s;
    }
    let cy = 0, cx = 0;
    for (let y = 0; y < nh; y++) cy += rowSum[y] * y;
    for (let x = 0; x < nw; x++) cx += colSum[x] * x;
    cy /= total; cx /= total;
    const t = Math.min(Math.max(roundHalfEven(CENTRE - cy), 0), FIELD - nh);
    const l = Math.min(Math.max(roundHalfEven(CENTRE - cx), 0), FIELD - nw);
    field.fill(0);
    for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) field[(t + y) * FIELD + l + x] = small[y * nw + x];
    const dy = CENTRE - (t + cy), dx = CENTRE - (l + cx);
    let src = field;
    if (Math.abs(dx) > 1e-3 || Math.abs(dy) > 1e-3) { shift(dx, dy); src = moved; }
    for (let i = 0; i < FIELD * FIELD; i++) {
      const v = roundHalfEven(src[i]);
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    return out;
  }

  function clip(v) { return v < 0 ? 0 : v < FIELD ? v : FIELD - 1; }

  function shift(dx, dy) {
    // img.transform(size, AFFINE, (1, 0, -dx, 0, 1, -dy), BILINEAR): Pillow's Geometry.c.
    const S = FIELD;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        let xin = (x + 0.5) + -dx, yin = (y + 0.5) + -dy;
        if (xin < 0.0 || xin >= S || yin < 0.0 || yin >= S) { moved[y * S + x] = 0; continue; }
        xin -= 0.5; yin -= 0.5;
        const xi = Math.floor(xin), yi = Math.floor(yin), fx = xin - xi, fy = yin - yi;
        const x0 = clip(xi), x1 = clip(xi + 1), r0 = clip(yi) * S;
        const a0 = field[r0 + x0];
        let v1 = a0 + (field[r0 + x1] - a0) * fx, v2 = v1;
        if (yi + 1 >= 0 && yi + 1 < S) {
          const r1 = (yi + 1) * S, b0 = field[r1 + x0];
          v2 = b0 + (field[r1 + x1] - b0) * fx;
        }
        moved[y * S + x] = v1 + (v2 - v1) * fy;
      }
    }
  }

  return { run, ink };
}

// ---- forward pass (Python twin: mnistnet/network.py::MLP.predict_proba) ------------------
/**
 * A network of layer sizes `sizes` (784, ..., 10), weights[l]: Float32Array (sizes[l] x
 * sizes[l+1]) row-major, biases[l]: Float32Array (sizes[l+1]); inputs scaled as the model does:
 * (x / 255 - mean) / std. forward(x) with x a (784) Uint8Array fills acts[l] (Float64Array,
 * ReLU applied to hidden layers, the logits for the last) and probs (Float64Array(10)).
 */
export function makeNetwork(sizes, mean, std, weights, biases) {
  const L = weights.length;
  const table = pixelTable(mean, std);
  const t0 = table[0];
  // Most of the field is background, whose scaled value t0 is the same everywhere: its share
  // of the first layer is folded into `base` once; a frame adds only the inked pixels.
  const n0 = sizes[1], base = new Float64Array(n0);
  for (let j = 0; j < n0; j++) base[j] = biases[0][j];
  const W0 = weights[0];
  for (let i = 0; i < sizes[0]; i++) {
    const row = i * n0;
    for (let j = 0; j < n0; j++) base[j] += t0 * W0[row + j];
  }
  const acts = sizes.slice(1).map((s) => new Float64Array(s));
  const scaled = new Float64Array(sizes[0]);
  const probs = new Float64Array(sizes[L]);

  function forward(x) {
    const h0 = acts[0];
    h0.set(base);
    for (let i = 0; i < sizes[0]; i++) {
      const v = x[i];
      scaled[i] = table[v];
      if (v === 0) continue;
      const d = table[v] - t0, row = i * n0;
      for (let j = 0; j < n0; j++) h0[j] += d * W0[row + j];
    }
    for (let l = 0; l < L; l++) {
      const h = acts[l];
      if (l > 0) {
        const prev = acts[l - 1], W = weights[l], b = biases[l], nOut = sizes[l + 1];
        for (let j = 0; j < nOut; j++) h[j] = b[j];
        for (let i = 0; i < sizes[l]; i++) {
          const a = prev[i];
          if (a === 0) continue; // ReLU zeros add nothing
          const row = i * nOut;
          for (let j = 0; j < nOut; j++) h[j] += a * W[row + j];
        }
      }
      if (l < L - 1) for (let j = 0; j < h.length; j++) if (h[j] < 0) h[j] = 0;
    }
    return softmax(acts[L - 1], probs);
  }

  return { sizes, weights, biases, acts, probs, scaled, table, forward };
}

// log_softmax then exp (mnistnet/network.py::log_softmax): z (logits) -> probs, filled in place.
function softmax(z, probs) {
  let mx = -Infinity;
  for (let k = 0; k < z.length; k++) if (z[k] > mx) mx = z[k];
  let s = 0;
  for (let k = 0; k < z.length; k++) s += Math.exp(z[k] - mx);
  const lse = Math.log(s);
  for (let k = 0; k < z.length; k++) probs[k] = Math.exp(z[k] - mx - lse);
  return probs;
}

// MLP.pixel_table: each uint8 pixel's scaled value, float64 arithmetic, then float32.
function pixelTable(mean, std) {
  const table = new Float64Array(256);
  for (let v = 0; v < 256; v++) table[v] = Math.fround((v / 255 - mean) / std);
  return table;
}


// ---- a stack of layers (Python twin: mnistnet/net.py::Net.predict_proba, mnistnet/layers.py) --
const INPUT_SHAPE = [28, 28, 1];
const sameShape = (a, b) => Array.isArray(a) && a.length === b.length && a.every((v, i) => v === b[i]);
const count = (shape) => shape.reduce((a, b) => a * b, 1);

/**
 * The network of a version 2 payload's header.stack: layers of kind conv, relu, tanh, pool,
 * flatten, dense, dropout, each with "in" and "out" shapes ([H, W, C] channels last, or [n]);
 * a conv has k, pad and param, a dense param: the index of its weights[] (Float32Array
 * (fan_in x fan_out) row-major, a conv's rows in (i, j, c) order as Conv2D's im2col) and
 * biases[]. Inputs are scaled as the model does, (x / 255 - mean) / std, read as 28 x 28 x 1.
 * Checks every shape against its neighbours and its arrays; Error names the first bad layer.
 *
 * forward(x), x a (784) Uint8Array: fills input (Float64Array(784), the scaled pixels), each
 * layer's out (Float64Array of its out shape, channels last; flatten and dropout, identities
 * at inference, share their input's array) and probs (Float64Array(10)), returned.
 */
export function makeStack(header, weights, biases) {
  const stack = header.stack, table = pixelTable(header.mean, header.std);
  if (!Array.isArray(stack) || stack.length === 0) throw new Error("the payload has no layer stack");
  const input = new Float64Array(count(INPUT_SHAPE));
  let shape = INPUT_SHAPE, prev = input;
  const layers = stack.map((s, i) => {
    const layer = checkLayer(s, i, shape, weights, biases);
    layer.inp = prev;
    layer.out = s.kind === "flatten" || s.kind === "dropout" ? prev : new Float64Array(count(layer.outShape));
    prev = layer.out;
    shape = layer.outShape;
    return layer;
  });
  const last = layers[layers.length - 1];
  if (last.kind !== "dense" || !sameShape(shape, [10])) throw new Error("the stack must end in a dense layer of 10");
  const probs = new Float64Array(10);
  const STEP = { conv: convForward, relu: reluForward, tanh: tanhForward, pool: poolForward, dense: denseForward };

  function forward(x) {
    for (let i = 0; i < input.length; i++) input[i] = table[x[i]];
    for (const layer of layers) if (STEP[layer.kind]) STEP[layer.kind](layer);
    return softmax(last.out, probs);
  }

  return { header, layers, input, probs, weights, biases, table, forward };
}

function checkLayer(s, i, shape, weights, biases) {
  const where = `layer ${i} (${s && s.kind})`;
  if (!s || !sameShape(s.in, shape)) throw new Error(`${where}: input ${JSON.stringify(s && s.in)}, expected [${shape}]`);
  const layer = { kind: s.kind, index: i, inShape: shape, outShape: s.out };
  let want;
  if (s.kind === "conv" || s.kind === "dense") {
    const W = weights[s.param], b = biases[s.param];
    const fanIn = s.kind === "conv" ? shape[2] * s.k * s.k : count(shape), fanOut = s.out[s.out.length - 1];
    if (s.kind === "dense" && shape.length !== 1) throw new Error(`${where}: needs a flat input, got [${shape}]`);
    if (!W || !b || W.length !== fanIn * fanOut || b.length !== fanOut) {
      throw new Error(`${where}: weights ${W && W.length} and biases ${b && b.length}, ` +
        `expected ${fanIn} x ${fanOut} and ${fanOut}`);
    }
    Object.assign(layer, { W, b, param: s.param, fanIn, fanOut });
    if (s.kind === "conv") {
      const [H, Wd] = shape, k = s.k, pad = s.pad;
      if (shape.length !== 3 || !Number.isInteger(k) || !Number.isInteger(pad) || k < 1 || pad < 0 || 2 * pad > k - 1) {
        throw new Error(`${where}: bad kernel ${k} or padding ${pad}`); // "same" pads (k - 1) / 2 at most
      }
      Object.assign(layer, { k, pad });
      want = [H + 2 * pad - k + 1, Wd + 2 * pad - k + 1, fanOut];
    } else want = [fanOut];
  } else if (s.kind === "relu" || s.kind === "tanh" || s.kind === "dropout") want = shape;
  else if (s.kind === "pool") {
    if (shape.length !== 3) throw new Error(`${where}: needs an image, got [${shape}]`);
    want = [shape[0] >> 1, shape[1] >> 1, shape[2]];
  } else if (s.kind === "flatten") want = [count(shape)];
  else throw new Error(`${where}: not a layer this page knows`);
  if (!sameShape(s.out, want) || want.some((v) => !(v >= 1))) {
    throw new Error(`${where}: output ${JSON.stringify(s.out)}, expected [${want}]`);
  }
  return layer;
}

// Conv2D.forward: out[y, x, f] = b[f] + sum over (i, j, c) of in[y + i - pad, x + j - pad, c]
// times W[(i k + j) C + c, f]; the zero padding adds nothing, so it is skipped.
function convForward(layer) {
  const { inp, out, W, b, k, pad, fanOut: F } = layer, [H, Wd, C] = layer.inShape, [Ho, Wo] = layer.outShape;
  for (let y = 0; y < Ho; y++) {
    for (let x = 0; x < Wo; x++) {
      const o = (y * Wo + x) * F;
      for (let f = 0; f < F; f++) out[o + f] = b[f];
      for (let i = 0; i < k; i++) {
        const yy = y + i - pad;
        if (yy < 0 || yy >= H) continue;
        for (let j = 0; j < k; j++) {
          const xx = x + j - pad;
          if (xx < 0 || xx >= Wd) continue;
          const p = (yy * Wd + xx) * C;
          for (let c = 0; c < C; c++) {
            const v = inp[p + c];
            if (v === 0) continue; // ReLU zeros add nothing
            const row = ((i * k + j) * C + c) * F;
            for (let f = 0; f < F; f++) out[o + f] += v * W[row + f];
          }
        }
      }
    }
  }
}

function reluForward({ inp, out }) { for (let i = 0; i < out.length; i++) out[i] = inp[i] > 0 ? inp[i] : 0; }
function tanhForward({ inp, out }) { for (let i = 0; i < out.length; i++) out[i] = Math.tanh(inp[i]); }

// MaxPool2.forward: the largest of each 2 x 2 window, stride 2; an odd last row or column is dropped.
function poolForward({ inp, out, inShape, outShape }) {
  const [, Wd, C] = inShape, [Ho, Wo] = outShape;
  for (let y = 0; y < Ho; y++) {
    for (let x = 0; x < Wo; x++) {
      const a = (2 * y * Wd + 2 * x) * C, c2 = a + Wd * C, o = (y * Wo + x) * C;
      for (let c = 0; c < C; c++) {
        out[o + c] = Math.max(inp[a + c], inp[a + C + c], inp[c2 + c], inp[c2 + C + c]);
      }
    }
  }
}

// Dense.forward: out = b + inp @ W.
function denseForward({ inp, out, W, b, fanIn, fanOut }) {
  for (let j = 0; j < fanOut; j++) out[j] = b[j];
  for (let i = 0; i < fanIn; i++) {
    const a = inp[i];
    if (a === 0) continue;
    const row = i * fanOut;
    for (let j = 0; j < fanOut; j++) out[j] += a * W[row + j];
  }
}
