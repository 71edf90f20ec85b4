// A workflow DAG drawn in SVG: layered layout (longest-path layers, barycentre ordering) computed
// here from the API's nodes and edges, left to right. No library.
const SVG = "http://www.w3.org/2000/svg";
const W = 150, H = 38, GAP_X = 64, GAP_Y = 18, PAD = 16;

export function layout(nodes, edges) {
  const needs = new Map(nodes.map((n) => [n, []]));
  const next = new Map(nodes.map((n) => [n, []]));
  for (const [a, b] of edges) {
    if (needs.has(b) && next.has(a)) {
      needs.get(b).push(a);
      next.get(a).push(b);
    }
  }
  // Longest path from a source: a node sits one layer right of its deepest need.
  const layer = new Map();
  const visiting = new Set();
  const depth = (n) => {
    if (layer.has(n)) return layer.get(n);
    if (visiting.has(n)) return 0; // the API never sends a cycle; don't loop if it ever did
    visiting.add(n);
    const d = needs.get(n).reduce((m, p) => Math.max(m, depth(p) + 1), 0);
    layer.set(n, d);
    return d;
  };
  nodes.forEach(depth);
  const layers = [];
  for (const n of nodes) (layers[layer.get(n)] ||= []).push(n);
  // Barycentre sweeps to reduce crossings: order each layer by the mean position of its neighbours.
  const pos = new Map();
  const index = () => layers.forEach((l) => l.forEach((n, i) => pos.set(n, i)));
  index();
  const mean = (list, fallback) =>
    list.length ? list.reduce((s, p) => s + pos.get(p), 0) / list.length : fallback;
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const order = down ? layers.keys() : [...layers.keys()].reverse();
    for (const i of order) {
      const l = layers[i];
      if (!l) continue;
      l.sort((a, b) => mean(down ? needs.get(a) : next.get(a), pos.get(a)) -
                       mean(down ? needs.get(b) : next.get(b), pos.get(b)));
      l.forEach((n, k) => pos.set(n, k));
    }
  }
  const tallest = Math.max(1, ...layers.map((l) => (l ? l.length : 0)));
  const height = PAD * 2 + tallest * H + (tallest - 1) * GAP_Y;
  const boxes = new Map();
  layers.forEach((l, i) => {
    const column = l.length * H + (l.length - 1) * GAP_Y;
    const top = (height - column) / 2;
    l.forEach((n, k) => boxes.set(n, { x: PAD + i * (W + GAP_X), y: top + k * (H + GAP_Y), layer: i }));
  });
  const width = PAD * 2 + layers.length * W + Math.max(0, layers.length - 1) * GAP_X;
  return { boxes, width, height, layers: layers.length };
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// Draw into `host` (replacing its content); returns update(states) to recolour the nodes.
export function drawDag(host, nodes, edges, { label = "Workflow graph", states = {} } = {}) {
  const { boxes, width, height } = layout(nodes, edges);
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `${label}: ${nodes.length} nodes, ${edges.length} edges`,
    class: "dag",
  });
  const defs = el("defs", {}, svg);
  const marker = el("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse",
  }, defs);
  el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);
  const edgeLayer = el("g", { class: "edges" }, svg);
  for (const [a, b] of edges) {
    const s = boxes.get(a), t = boxes.get(b);
    if (!s || !t) continue;
    const x1 = s.x + W, y1 = s.y + H / 2, x2 = t.x, y2 = t.y + H / 2, mx = (x1 + x2) / 2;
    el("path", {
      d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 1} ${y2}`,
      class: "edge", "marker-end": "url(#arrow)", "data-edge": `${a}->${b}`,
    }, edgeLayer);
  }
  const groups = new Map();
  for (const n of nodes) {
    const b = boxes.get(n);
    const g = el("g", { class: "node", transform: `translate(${b.x} ${b.y})`, "data-node": n }, svg);
    const title = el("title", {}, g);
    el("rect", { width: W, height: H, rx: 8, ry: 8 }, g);
    const text = el("text", { x: W / 2, y: H / 2 + 4, "text-anchor": "middle" }, g);
    text.textContent = n.length > 20 ? n.slice(0, 19) + "…" : n;
    groups.set(n, { g, title });
  }
  host.replaceChildren(svg);
  // states: node -> state; undone: the nodes whose work a compensation has undone.
  const update = (next, undone = new Set()) => {
    for (const [n, { g, title }] of groups) {
      const st = (next && next[n]) || "";
      const comp = undone.has(n);
      g.setAttribute("class", `node${st ? " st-" + st.toLowerCase() : ""}${comp ? " undone" : ""}`);
      g.setAttribute("data-state", st);
      title.textContent = (st ? `${n}: ${st}` : n) + (comp ? " (compensated)" : "");
    }
  };
  update(states);
  return update;
}
