// The Inside page's training replay: the slider over a model's training snapshots. Positions
// 0..n-1 are the snapshots (in epoch order), n is the current model. The snapshots' bytes are
// asked for only when the slider first moves; until they arrive the position waits. A model
// without snapshots (every Net, an MLP from a file without them) shows Python's sentence why.
// Needs the DOM only. ui/inside.js hands it the slider's elements and two hooks:
//   use(pos)   show the network at slider position pos (the entry picks and paints it)
//   want()     fetch the snapshots (from the browser's cache or from Python)

/** els = {box, input, label}. -> {setup(meta, snaps) -> position to show or null, label(pos), reset()}. */
function makeEpochs(els, hooks) {
  let snaps = null, pending = null;
  els.input.addEventListener("input", () => {
    if (snaps) { hooks.use(Number(els.input.value)); return; }
    pending = Number(els.input.value); // replayed once the snapshots arrive
    els.label.textContent = "Loading the training replay...";
    hooks.want();
  });

  // meta: the pad's data from Python ({snapshots: how many, no_snapshots: the sentence});
  // s: the decoded snapshots or null. Returns the position to show now, or null.
  function setup(meta, s) {
    snaps = s;
    if (!meta || !meta.snapshots) {
      els.box.classList.add("none");
      els.label.textContent = meta && meta.no_snapshots ? meta.no_snapshots : "";
      els.input.hidden = true;
      return null;
    }
    els.box.classList.remove("none");
    els.input.hidden = false;
    els.input.disabled = false;
    const n = snaps ? snaps.snapshots.length : meta.snapshots;
    els.input.max = String(n);
    if (!snaps) { // fetched when the slider first moves
      if (pending === null) {
        els.input.value = String(n);
        els.label.textContent = `Through training: now, the current model (slide left to replay the ${n} snapshots)`;
      }
      return null;
    }
    const pos = pending === null ? n : pending;
    pending = null;
    els.input.value = String(pos);
    return pos;
  }

  // The label for position pos, once the snapshots are here.
  function label(pos) {
    if (!snaps) return;
    const n = snaps.snapshots.length;
    els.label.textContent = pos >= n ? `Through training: now, the current model (slide left to replay the ${n} snapshots)`
      : `Through training: ${epochText(snaps.snapshots[pos].epoch)}`;
  }

  return { setup, label, reset() { pending = null; } };
}

function epochText(e) {
  if (e === 0) return "the initial random weights (before any training)";
  if (e < 1) return `early in epoch 1 (${Math.round(e * 100)}% of it)`;
  if (Number.isInteger(e)) return `the end of epoch ${e}`;
  return `epoch ${e.toFixed(2)}`;
}
