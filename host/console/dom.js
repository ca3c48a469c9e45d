// Building DOM nodes without HTML strings: every piece of text from the
// server goes in through textContent or a text node, never innerHTML.

/**
 * Creates an element. `attrs`: `class`, `text`, `dataset` (object), `on`
 * (object of event listeners), `hidden`/`disabled`/... (booleans become
 * properties), anything else an attribute. Children: nodes, strings (text),
 * arrays; null, undefined and false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    else if (value === true) el.setAttribute(key, '');
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (see `h`). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Removes every child. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** `HH:MM:SS` of a millisecond timestamp. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

/** A short date and time of a millisecond timestamp. */
export function dateTime(ms) {
  return new Date(ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'short', hour12: false });
}

/** JSON on several lines, for <pre>. Strings that hold JSON are parsed first. */
export function pretty(value) {
  if (typeof value === 'string') {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
  }
  return JSON.stringify(value, null, 2);
}

/** JSON on one line, cut to `max` characters. */
export function compact(value, max = 120) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "plan_summary" → "Plan summary". */
export function humanize(name) {
  const words = String(name).replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1).toLowerCase();
}

/** Whether the narrow (phone) layout is active. */
export function isNarrow() {
  return window.matchMedia('(max-width: 900px)').matches;
}
