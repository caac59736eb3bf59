// The visitor's key: 128 random bits kept in this browser's localStorage, so every tab, reload
// and server restart finds the same visitor. Handed to Python once per page when Python does
// not have it yet (`data` is what Python has). crypto.getRandomValues, not randomUUID: the
// latter needs https, and `make share` serves http.
export default function (component) {
  const { data, setStateValue } = component;
  const NAME = "mnistnet.visitor";
  let key = null;
  try { key = window.localStorage.getItem(NAME); } catch (e) { /* storage blocked: a key per page */ }
  if (!key || !/^[0-9a-f]{32}$/.test(key)) {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try { window.localStorage.setItem(NAME, key); } catch (e) { /* as above */ }
  }
  if (data !== key) setStateValue("key", key);
}
