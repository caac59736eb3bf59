// The Inside page's drawing pad: the mouse, a pen or a finger (pointer events) draws white
// strokes with round ends on the black 280 x 280 canvas; undo and clear; the pen's width.
// It keeps the box its strokes touched, so a frame reads only that region of the canvas
// (the preprocessor, ui/inside_math.js, takes every pixel outside it as black).
// Needs only the DOM. ui/inside.js (the entry) hands it its elements, a strokes list that
// outlives the pad (a page switch brings the drawing back) and two hooks:
//   changed(t0, event)   the drawing changed (t0: when its handler started; event: a move)
//   ended()              a stroke ended (the pen lifted)

const PAD_SIZE = 280; // canvas pixels, as ui/inside.py's PAD and the Draw page's canvas

/**
 * els = {canvas, pen (the width input), undo, clear}; strokes: [{w, pts: [x0, y0, x1, y1, ...]}].
 * -> {repaint(), read(pre) -> (784) Uint8Array or null, drawing() -> a stroke is under way,
 *     png() -> the canvas as a PNG data URL}.
 */
function makeDrawing(els, strokes, hooks) {
  const { canvas } = els, ctx = canvas.getContext("2d", { willReadFrequently: true });
  let region = null, stroke = null;

  function grow(x, y, w) {
    const r = w / 2 + 2;
    const x0 = Math.max(0, Math.floor(x - r)), y0 = Math.max(0, Math.floor(y - r));
    const x1 = Math.min(PAD_SIZE, Math.ceil(x + r)), y1 = Math.min(PAD_SIZE, Math.ceil(y + r));
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
  function repaint() {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, PAD_SIZE, PAD_SIZE);
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
  function point(e) { // client pixels -> canvas pixels (the canvas may be shown smaller)
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * PAD_SIZE) / r.width, ((e.clientY - r.top) * PAD_SIZE) / r.height];
  }

  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    const [x, y] = point(e);
    stroke = { w: Number(els.pen.value), pts: [x, y] };
    strokes.push(stroke);
    grow(x, y, stroke.w);
    segment(stroke, 0);
    hooks.changed(performance.now(), null);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!stroke) return;
    const t = performance.now();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const [x, y] = point(ev);
      stroke.pts.push(x, y);
      grow(x, y, stroke.w);
      segment(stroke, stroke.pts.length - 2);
    }
    hooks.changed(t, e);
  });
  const end = () => { if (stroke) { stroke = null; hooks.ended(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  els.undo.addEventListener("click", () => { strokes.pop(); repaint(); hooks.ended(); hooks.changed(performance.now(), null); });
  els.clear.addEventListener("click", () => {
    strokes.length = 0; repaint(); hooks.ended(); hooks.changed(performance.now(), null);
  });

  // The drawing as the preprocessor reads it: only the region the strokes touched.
  function read(pre) {
    if (!region || !strokes.length) return null;
    const [x0, y0, x1, y1] = region;
    const img = ctx.getImageData(x0, y0, x1 - x0, y1 - y0);
    return pre.run(img.data, x0, y0, x1 - x0, y1 - y0);
  }

  return { repaint, read, drawing: () => stroke !== null, png: () => canvas.toDataURL("image/png") };
}
