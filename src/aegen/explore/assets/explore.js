// aegen explore: draws every picture on canvases from the server's JSON answers.
// Live mode asks the server (same origin, nothing else); the static export sets
// window.AEGEN_STATIC (assets/data.js) and the same views answer from it instead.
"use strict";
(() => {
  const STATIC = window.AEGEN_STATIC || null;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const status = document.getElementById("status");
  const main = document.getElementById("page");

  // ------------------------------------------------------------ small helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "style") {  // through the CSSOM: the CSP refuses style attributes
        for (const decl of v.split(";")) {
          const at = decl.indexOf(":");
          if (at > 0) node.style.setProperty(decl.slice(0, at).trim(), decl.slice(at + 1).trim());
        }
      }
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }

  // requests in flight, so tests (and the status line) can wait for quiet
  let inFlight = 0;
  const waiting = [];
  function settle() {
    if (inFlight === 0) while (waiting.length) waiting.shift()();
  }

  // run null: the list of runs
  async function request(run, action, body) {
    inFlight += 1;
    try {
      const url = run === null ? "api/runs" : `api/${encodeURIComponent(run)}/${encodeURIComponent(action)}`;
      const init = body === undefined ? {} : {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
      const res = await fetch(url, init);
      const data = await res.json();
      if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
      return data;
    } finally {
      inFlight -= 1;
      settle();
    }
  }

  function fail(err) { say(String(err.message || err), true); }

  // an action of several requests in a row counts as in flight from its start to its end
  function track(fn) {
    inFlight += 1;
    return Promise.resolve().then(fn).catch(fail).finally(() => { inFlight -= 1; settle(); });
  }

  // run fn with the latest arguments only, one call at a time: a mouse that moves
  // faster than the server answers skips the points in between, never queues them
  function latest(fn) {
    let busy = false, next = null;
    const run = (...args) => {
      if (busy) { next = args; return; }
      busy = true;
      inFlight += 1;
      Promise.resolve().then(() => fn(...args)).catch(fail).finally(() => {
        busy = false;
        inFlight -= 1;
        if (next) { const a = next; next = null; run(...a); }
        settle();
      });
    };
    return run;
  }

  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8ClampedArray(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // a grayscale image (base64 of w*h bytes) into a w×h canvas
  function drawGray(canvas, b64) {
    const v = bytes(b64);
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(canvas.width, canvas.height);
    for (let i = 0; i < v.length; i++) {
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v[i];
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  // an offscreen 28×28 canvas of an image, to draw scaled with drawImage
  function tile(b64, size) {
    const c = el("canvas", {width: size || 28, height: size || 28});
    drawGray(c, b64);
    return c;
  }

  function grayCanvas(id, cls) {
    return el("canvas", {id, width: 28, height: 28, class: "pixelated " + (cls || "")});
  }

  function legend(classes, labels) {
    const present = new Set(labels);
    return el("div", {class: "legend"}, ...classes.map((name, i) => present.has(i) ?
      el("span", {}, el("i", {style: `background:${PALETTE[i % PALETTE.length]}`}), name) : ""));
  }

  // ------------------------------------------------------------ the latent page

  function latentPage(info, run) {
    const W = 440, H = 440;
    const [[x0, y0], [x1, y1]] = info.extent;
    const toPx = ([x, y]) => [(x - x0) / (x1 - x0) * W, (1 - (y - y0) / (y1 - y0)) * H];
    const fromPx = (px, py) => [x0 + px / W * (x1 - x0), y0 + (1 - py / H) * (y1 - y0)];
    const st = {z: info.center.slice(), atA: false, a: null, b: null, path: null, hover: null, pathKind: "linear"};

    const map = el("canvas", {id: "map", width: W, height: H, class: "map"});
    const decoded = grayCanvas("decoded", "big");
    const zText = el("div", {class: "mono", id: "ztext"});
    const aImg = grayCanvas("pick-a", "small"), aRec = grayCanvas("pick-a-recon", "small");
    const bImg = grayCanvas("pick-b", "small");
    const aText = el("div", {class: "mono"}), bText = el("div", {class: "mono"});
    const sliders = el("div", {class: "sliders", id: "sliders"});
    const strip = el("canvas", {id: "strip", class: "strip", width: 9 * 28, height: 2 * 28});
    strip.style.width = `${2 * 9 * 28}px`;
    const scrub = el("input", {type: "range", id: "scrub", min: 0, max: 8, value: 0});
    const kind = el("select", {id: "path-kind"},
      el("option", {value: "linear", text: "linear"}), el("option", {value: "spherical", text: "spherical"}));

    // the scatter, drawn once
    const base = el("canvas", {width: W, height: H});
    const bctx = base.getContext("2d");
    bctx.fillStyle = "#fff";
    bctx.fillRect(0, 0, W, H);
    info.points.forEach((p, i) => {
      const [px, py] = toPx(p);
      bctx.fillStyle = PALETTE[info.labels[i] % PALETTE.length];
      bctx.globalAlpha = 0.7;
      bctx.beginPath();
      bctx.arc(px, py, 2.2, 0, 2 * Math.PI);
      bctx.fill();
    });
    bctx.globalAlpha = 1;

    function marker(ctx, p, color, text) {
      const [px, py] = toPx(p);
      ctx.strokeStyle = color; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(px, py, 6, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = color; ctx.font = "bold 12px sans-serif"; ctx.fillText(text, px + 8, py - 6);
    }

    function ellipse(ctx, p, cov) {
      // the 2σ ellipse of the projected posterior, in pixels (y flipped)
      const sx = W / (x1 - x0), sy = H / (y1 - y0);
      const a = cov[0][0] * sx * sx, b = -cov[0][1] * sx * sy, c = cov[1][1] * sy * sy;
      const mid = (a + c) / 2, d = Math.sqrt(((a - c) / 2) ** 2 + b * b);
      const l1 = Math.max(mid + d, 0), l2 = Math.max(mid - d, 0);
      const theta = 0.5 * Math.atan2(2 * b, a - c);
      const [px, py] = toPx(p);
      ctx.strokeStyle = "#111"; ctx.setLineDash([4, 3]); ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.ellipse(px, py, Math.max(2 * Math.sqrt(l1), 1), Math.max(2 * Math.sqrt(l2), 1), theta, 0, 2 * Math.PI);
      ctx.stroke(); ctx.setLineDash([]);
    }

    function redraw() {
      const ctx = map.getContext("2d");
      ctx.drawImage(base, 0, 0);
      if (st.path) {
        const pts = st.path[st.pathKind + "_points"];
        ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5; ctx.beginPath();
        pts.forEach((p, i) => { const [px, py] = toPx(p); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
        ctx.stroke();
        const [px, py] = toPx(pts[+scrub.value]);
        ctx.fillStyle = "#111"; ctx.beginPath(); ctx.arc(px, py, 4, 0, 2 * Math.PI); ctx.fill();
      }
      if (st.a) { marker(ctx, st.a.point, "#000", "A"); if (st.a.cov2) ellipse(ctx, st.a.point, st.a.cov2); }
      if (st.b) marker(ctx, st.b.point, "#555", "B");
      if (st.hover) {
        const [px, py] = st.hover;
        ctx.strokeStyle = "rgba(0,0,0,0.5)"; ctx.lineWidth = 1;
        ctx.beginPath(); ctx.moveTo(px - 8, py); ctx.lineTo(px + 8, py);
        ctx.moveTo(px, py - 8); ctx.lineTo(px, py + 8); ctx.stroke();
      }
    }

    function showZ() {
      const shown = st.z.slice(0, 8).map((v) => v.toFixed(2)).join(", ");
      zText.textContent = `z = (${shown}${st.z.length > 8 ? ", …" : ""})`;
    }

    const decodeLive = latest(async () => {
      const z = st.z.slice();
      const ans = await request(run, "decode", {z});
      drawGray(decoded, ans.image);
    });

    function decodeAt(px, py) {
      const p = fromPx(px, py);
      if (STATIC) {
        const g = info.grid;
        const ix = Math.round((p[0] - x0) / (x1 - x0) * (g - 1));
        const iy = Math.round((y1 - p[1]) / (y1 - y0) * (g - 1));
        const cell = Math.min(g - 1, Math.max(0, iy)) * g + Math.min(g - 1, Math.max(0, ix));
        drawGray(decoded, info.decodes[cell]);
        st.z = info.center.map((c, d) => c + p[0] * info.basis[0][d] + p[1] * info.basis[1][d]);
        showZ();
        return;
      }
      st.z = info.center.map((c, d) => c + p[0] * info.basis[0][d] + p[1] * info.basis[1][d]);
      st.atA = false;
      syncSliders();
      showZ();
      decodeLive();
    }

    function nearest(px, py) {
      let best = -1, bestD = 64;  // within 8 px
      info.points.forEach((p, i) => {
        const [qx, qy] = toPx(p);
        const d = (qx - px) ** 2 + (qy - py) ** 2;
        if (d < bestD) { bestD = d; best = i; }
      });
      return best;
    }

    async function pick(i, which) {
      const ans = await request(run, "image", {index: i});
      const text = `#${i} · ${info.classes[ans.label] ?? ans.label}`;
      if (which === "a") {
        st.a = ans;
        drawGray(aImg, ans.image); drawGray(aRec, ans.recon);
        aText.textContent = text;
        st.z = ans.z.slice();
        st.atA = true;
        syncSliders(); showZ();
        drawGray(decoded, ans.recon);
      } else {
        st.b = ans;
        drawGray(bImg, ans.image);
        bText.textContent = text;
      }
      if (st.a && st.b) await loadPath();
      redraw();
    }

    async function loadPath() {
      st.path = await request(run, "path", {a: st.a.index, b: st.b.index, steps: 9});
      const ctx = strip.getContext("2d");
      ["linear", "spherical"].forEach((k, row) => st.path[k].forEach((im, j) =>
        ctx.drawImage(tile(im), j * 28, row * 28)));
      showStep();
    }

    function showStep() {
      if (!st.path) return;
      drawGray(decoded, st.path[st.pathKind][+scrub.value]);
      redraw();
    }

    // one slider per shown latent dimension
    const sliderInputs = info.sliders.map((s) => {
      const input = el("input", {type: "range", min: s.low, max: s.high, step: (s.high - s.low) / 200,
        value: info.center[s.dim], "data-dim": s.dim});
      const value = el("span", {class: "mono"});
      input.addEventListener("input", () => {
        st.z[s.dim] = +input.value;
        st.atA = false;
        value.textContent = (+input.value).toFixed(2);
        showZ();
        decodeLive();
      });
      sliders.append(el("span", {class: "mono", text: `z[${s.dim}]`}), input, value);
      return {input, value, dim: s.dim};
    });

    function syncSliders() {
      for (const s of sliderInputs) {
        s.input.value = st.z[s.dim];
        let text = st.z[s.dim].toFixed(2);
        if (st.atA && st.a.std) text = `μ ${st.a.z[s.dim].toFixed(2)} σ ${st.a.std[s.dim].toFixed(2)}`;
        s.value.textContent = text;
      }
    }

    let down = null;
    map.addEventListener("mousemove", (e) => {
      st.hover = [e.offsetX, e.offsetY];
      decodeAt(e.offsetX, e.offsetY);
      redraw();
    });
    map.addEventListener("mousedown", (e) => { down = [e.offsetX, e.offsetY]; });
    map.addEventListener("mouseup", (e) => {
      if (!down || STATIC) return;
      const moved = Math.hypot(e.offsetX - down[0], e.offsetY - down[1]);
      down = null;
      if (moved > 3) return;
      const i = nearest(e.offsetX, e.offsetY);
      if (i >= 0) track(() => pick(i, e.shiftKey ? "b" : "a"));
    });
    map.addEventListener("mouseleave", () => { st.hover = null; redraw(); });
    scrub.addEventListener("input", showStep);
    kind.addEventListener("change", () => { st.pathKind = kind.value; showStep(); });

    const what = info.projection === "latent" ? "the 2-D latent itself"
      : `the first two principal components of the ${info.dim}-D codes`;
    const picks = el("div", {class: "panel"},
      el("h3", {text: "Picked images (click a point: A, shift-click: B)"}),
      el("div", {class: "row"},
        el("div", {}, aImg, aText, el("div", {class: "note", text: "A"})),
        el("div", {}, aRec, el("div", {class: "note", text: "A decoded"})),
        el("div", {}, bImg, bText, el("div", {class: "note", text: "B"}))));
    const path = el("div", {class: "panel"},
      el("h3", {text: "Path from A to B (top: linear, bottom: spherical)"}),
      strip, el("div", {class: "controls"}, el("label", {text: "step "}, scrub), el("label", {text: "path "}, kind)));
    const slidersPanel = el("div", {},
      el("h3", {text: info.dim > info.sliders.length ?
        `Latent sliders (the ${info.sliders.length} dimensions that vary most)` : "Latent sliders"}),
      sliders);
    main.replaceChildren(
      el("h2", {text: info.title}),
      el("p", {class: "note", text: `The map shows the ${info.n} test images' codes in ${what}. ` +
        "Move the mouse over it to decode that point" + (STATIC ? " (from a precomputed grid)." : "; " +
        "click a point to pick its image, shift-click a second one for the path between them.") +
        (info.vae && !STATIC ? " For a VAE the dashed ellipse is the picked image's posterior (2σ)." : "")}),
      el("div", {class: "row"},
        el("div", {class: "panel"}, map, legend(info.classes, info.labels)),
        el("div", {class: "panel"}, el("h3", {text: "Decoded"}), decoded, zText, STATIC ? "" : slidersPanel)),
      STATIC ? "" : el("div", {class: "row"}, picks, path),
    );
    redraw();
    showZ();
    if (!STATIC) decodeLive();
    else drawGray(decoded, info.decodes[Math.floor(info.grid * info.grid / 2)]);
  }

  // ------------------------------------------------------------ the VQ-VAE page

  function gridOverlay(ctx, size, h, w, codes, selected, here) {
    const cw = size / w, ch = size / h;
    ctx.font = `${Math.floor(ch * 0.34)}px monospace`;
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const k = i * w + j;
      ctx.strokeStyle = "rgba(255,255,255,0.35)"; ctx.lineWidth = 1;
      ctx.strokeRect(j * cw + 0.5, i * ch + 0.5, cw - 1, ch - 1);
      if (codes[k] >= 0) {
        ctx.fillStyle = "rgba(0,0,0,0.55)";
        ctx.fillRect(j * cw + cw * 0.18, i * ch + ch * 0.3, cw * 0.64, ch * 0.4);
        ctx.fillStyle = "#ffd34d";
        ctx.fillText(String(codes[k]), j * cw + cw / 2, i * ch + ch / 2);
      }
      if (selected && selected.has(k)) {
        ctx.strokeStyle = "#1f6feb"; ctx.lineWidth = 3;
        ctx.strokeRect(j * cw + 2, i * ch + 2, cw - 4, ch - 4);
      }
      if (here === k) {
        ctx.strokeStyle = "#e5a50a"; ctx.lineWidth = 3;
        ctx.strokeRect(j * cw + 2, i * ch + 2, cw - 4, ch - 4);
      }
    }
  }

  function codebookView(book, usage, onPick) {
    const cols = 16, cell = 30, n = book.length;
    const rows = Math.ceil(n / cols);
    const canvas = el("canvas", {id: "codebook", width: cols * cell, height: rows * cell});
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    book.forEach((im, k) => {
      ctx.globalAlpha = usage[k] > 0 ? 1 : 0.3;  // codes no test image uses are faded
      ctx.drawImage(tile(im), (k % cols) * cell + 1, Math.floor(k / cols) * cell + 1);
    });
    ctx.globalAlpha = 1;
    const total = usage.reduce((a, b) => a + b, 0) || 1;
    const bars = el("canvas", {id: "usage", width: cols * cell, height: 60});
    const bctx = bars.getContext("2d");
    const top = Math.max(...usage, 1);
    usage.forEach((u, k) => {
      bctx.fillStyle = "#1f6feb";
      const h = Math.round(56 * u / top);
      bctx.fillRect(k * bars.width / n, 58 - h, Math.max(bars.width / n - 0.5, 0.5), h);
    });
    const tip = el("div", {class: "mono", text: "hover a code"});
    const at = (e) => {
      const k = Math.floor(e.offsetY / cell) * cols + Math.floor(e.offsetX / cell);
      return k < n ? k : -1;
    };
    canvas.addEventListener("mousemove", (e) => {
      const k = at(e);
      if (k >= 0) tip.textContent = `code ${k}: used ${usage[k]} times (${(100 * usage[k] / total).toFixed(1)} %)`;
    });
    canvas.addEventListener("click", (e) => { const k = at(e); if (k >= 0 && onPick) onPick(k); });
    return el("div", {}, canvas, el("h3", {text: "Usage over the test images (code 0 … K−1)"}), bars, tip);
  }

  async function vqPage(info, run) {
    const [h, w] = info.grid, S = 252;
    const book = STATIC ? {images: info.codebook, usage: info.usage} : await request(run, "codebook");
    const n = STATIC ? info.images.length : info.n;
    const st = {index: 0, orig: null, codes: null, selected: new Set(), imageB64: null};
    const picture = el("canvas", {id: "vq-image", width: S, height: S, class: "big"});
    const decoded = grayCanvas("vq-decoded", "big");
    const original = grayCanvas("vq-recon", "big");
    const index = el("input", {type: "number", id: "vq-index", min: 0, max: n - 1, value: 0});
    const code = el("input", {type: "number", id: "vq-code", min: 0, max: info.num_codes - 1, value: info.background});
    const caption = el("div", {class: "mono"});

    function drawPicture() {
      const ctx = picture.getContext("2d");
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(tile(st.imageB64), 0, 0, S, S);
      gridOverlay(ctx, S, h, w, st.codes, st.selected, -1);
      app.state = {codes: st.codes.slice(), selected: [...st.selected].sort((a, b) => a - b)};
    }

    const decodeLive = latest(async () => {
      const ans = await request(run, "decode", {codes: st.codes.slice()});
      drawGray(decoded, ans.image);
    });

    async function load(i) {
      const ans = STATIC ? info.images[i] : await request(run, "image", {index: i});
      st.index = i; st.orig = ans.codes.slice(); st.codes = ans.codes.slice(); st.imageB64 = ans.image;
      st.selected.clear();
      caption.textContent = `test image #${i} · ${info.classes[ans.label] ?? ans.label}`;
      drawGray(decoded, ans.recon); drawGray(original, ans.recon);
      drawPicture();
    }

    function setCode(k) {
      code.value = k;
      if (STATIC || st.selected.size === 0) return;
      for (const c of st.selected) st.codes[c] = k;
      drawPicture();
      decodeLive();
    }

    const cellAt = (e) => {
      const j = Math.floor(e.offsetX / (picture.clientWidth / w));
      const i = Math.floor(e.offsetY / (picture.clientHeight / h));
      return (i >= 0 && i < h && j >= 0 && j < w) ? i * w + j : -1;
    };
    let painting = false;
    picture.addEventListener("mousedown", (e) => {
      const c = cellAt(e);
      if (c < 0) return;
      painting = true;
      if (!e.shiftKey) st.selected.clear();
      st.selected.add(c);
      code.value = st.codes[c];
      drawPicture();
    });
    picture.addEventListener("mousemove", (e) => {
      if (!painting) return;
      const c = cellAt(e);
      if (c >= 0 && !st.selected.has(c)) { st.selected.add(c); drawPicture(); }
    });
    picture.addEventListener("mouseup", () => { painting = false; });
    picture.addEventListener("mouseleave", () => { painting = false; });
    code.addEventListener("change", () => {
      const k = Math.round(+code.value);
      if (k >= 0 && k < info.num_codes) setCode(k);
    });
    index.addEventListener("change", () => {
      const i = Math.round(+index.value);
      if (i >= 0 && i < n) track(() => load(i));
    });
    const step = (d) => { index.value = (st.index + d + n) % n; track(() => load(+index.value)); };
    const reset = () => {
      st.codes = st.orig.slice(); st.selected.clear(); drawPicture();
      if (!STATIC) decodeLive();
    };

    main.replaceChildren(
      el("h2", {text: info.title}),
      el("p", {class: "note", text: `A test image with its ${h}×${w} grid of code indices (K = ${info.num_codes}). ` +
        (STATIC ? "This exported page shows the grids; run aegen explore to edit them." :
          "Click a cell, or drag over several, then choose a code (type it, or click it in the codebook): " +
          "the decoded image follows.")}),
      el("div", {class: "controls"},
        el("button", {text: "◀", onclick: () => step(-1)}), el("label", {text: "image "}, index),
        el("button", {text: "▶", onclick: () => step(1)}),
        el("label", {text: "code for the selected cells "}, code),
        el("button", {id: "vq-reset", text: "reset grid", onclick: reset})),
      el("div", {class: "row"},
        el("div", {class: "panel"}, el("h3", {text: "Image and its codes"}), picture, caption),
        el("div", {class: "panel"}, el("h3", {text: "Decoded from the grid"}), decoded),
        el("div", {class: "panel"}, el("h3", {text: "Decoded from the image's own codes"}), original),
        el("div", {class: "panel"}, el("h3", {text: "Codebook: each code alone in a background grid"}),
          codebookView(book.images, book.usage, setCode))),
    );
    await load(0);
  }

  // ------------------------------------------------------------ the prior page

  async function priorPage(info, run) {
    const [h, w] = info.grid, S = 252, T = h * w;
    const book = STATIC ? info.codebook : (await request(info.vq, "codebook")).images;
    const tiles = book.map((im) => tile(im));
    const st = {state: null, session: null, playing: false, here: -1, queue: Promise.resolve(), rec: 0};
    const grid = el("canvas", {id: "prior-grid", width: S, height: S, class: "big"});
    const decoded = grayCanvas("prior-decoded", "big");
    const cands = el("div", {class: "candidates", id: "candidates"});
    const where = el("div", {class: "mono", id: "prior-t"});
    const seed = el("input", {type: "number", id: "seed", min: 0, value: 0});
    const temp = el("input", {type: "range", id: "temperature", min: 0.1, max: 2, step: 0.05, value: 1});
    const tempText = el("span", {class: "mono", text: "1.00"});
    const topk = el("input", {type: "number", id: "top-k", min: 0, max: info.num_codes, value: 0});
    const label = el("select", {id: "label"}, el("option", {value: "", text: "random"}),
      ...info.classes.map((c, i) => el("option", {value: i, text: c})));
    const recSelect = STATIC ? el("select", {id: "recording"}, ...info.recordings.map((r, i) =>
      el("option", {value: i, text: `seed ${r.seed}` + (r.label === null ? "" : ` · ${info.classes[r.label] ?? r.label}`)}))) : null;
    const playBtn = el("button", {id: "play", text: "play"});

    function draw(s) {
      st.state = app.state = s;
      const ctx = grid.getContext("2d");
      ctx.fillStyle = "#000"; ctx.fillRect(0, 0, S, S);
      ctx.imageSmoothingEnabled = false;
      const cw = S / w, ch = S / h;
      s.codes.forEach((k, i) => {
        if (k < 0) return;
        ctx.globalAlpha = 0.55;
        ctx.drawImage(tiles[k], (i % w) * cw, Math.floor(i / w) * ch, cw, ch);
      });
      ctx.globalAlpha = 1;
      gridOverlay(ctx, S, h, w, s.codes, null, s.done ? -1 : s.t);
      if (st.here >= 0) {
        ctx.strokeStyle = "#1f6feb"; ctx.lineWidth = 3;
        ctx.strokeRect((st.here % w) * cw + 2, Math.floor(st.here / w) * ch + 2, cw - 4, ch - 4);
      }
      drawGray(decoded, s.image);
      where.textContent = s.done ? `done: all ${T} codes drawn` :
        `position t = ${s.t} of ${T}` + (s.label === null ? "" : ` · class ${info.classes[s.label] ?? s.label}`);
      cands.replaceChildren(el("h3", {text: s.done ? "Candidates" : `Candidates at t = ${s.t}`}),
        ...s.candidates.map((c) => {
          const thumb = el("canvas", {width: 28, height: 28});
          thumb.getContext("2d").drawImage(tiles[c.code], 0, 0);
          return el("div", {class: "candidate"}, thumb, el("span", {class: "mono", text: `code ${c.code}`}),
            el("div", {class: "bar", style: `width:${Math.max(1, Math.round(140 * c.p / s.candidates[0].p))}px`}),
            el("span", {class: "mono", text: `${(100 * c.p).toFixed(1)}%`}));
        }));
    }

    function settings(prefix) {
      const body = {seed: Math.max(0, Math.round(+seed.value) || 0), temperature: +temp.value,
        top_k: +topk.value > 0 ? Math.round(+topk.value) : null,
        label: label.value === "" ? null : +label.value};
      if (!info.conditional) body.label = null;
      if (prefix) body.prefix = prefix;
      return body;
    }

    // every action goes through one queue, so each click is exactly one request, in order
    function enqueue(fn) {
      inFlight += 1;  // counted from the click, not from when its turn comes
      st.queue = st.queue.then(fn).catch(fail).finally(() => { inFlight -= 1; settle(); });
      return st.queue;
    }

    const restart = () => enqueue(async () => {
      st.here = -1;
      if (STATIC) { st.rec = +recSelect.value; draw(info.recordings[st.rec].states[0]); return; }
      const s = await request(run, "start", settings());
      st.session = s.session; draw(s);
    });
    const stepOnce = () => enqueue(async () => {
      if (!st.state || st.state.done) { stop(); return; }
      if (STATIC) { draw(info.recordings[st.rec].states[st.state.t + 1]); return; }
      draw(await request(run, "step", {session: st.session}));
    });
    const resample = () => enqueue(async () => {
      if (STATIC || !st.state) return;
      const t = st.here >= 0 ? st.here : st.state.t;
      const prefix = st.state.codes.slice(0, t).map((k) => (k < 0 ? info.background : k));
      seed.value = (Math.round(+seed.value) || 0) + 1;  // new random numbers from t on
      st.here = -1;
      const s = await request(run, "start", settings(prefix));
      st.session = s.session; draw(s);
    });
    function stop() { st.playing = false; playBtn.textContent = "play"; }
    function play() {
      if (st.playing) { stop(); return; }
      st.playing = true; playBtn.textContent = "pause";
      const tick = () => {
        if (!st.playing) return;
        if (st.state && st.state.done) { stop(); return; }
        stepOnce().then(() => setTimeout(tick, 120));
      };
      tick();
    }
    playBtn.addEventListener("click", play);
    grid.addEventListener("click", (e) => {
      if (STATIC || !st.state) return;
      const i = Math.floor(e.offsetY / (grid.clientHeight / h)) * w + Math.floor(e.offsetX / (grid.clientWidth / w));
      st.here = i <= st.state.t ? i : st.state.t;
      draw(st.state);
    });
    temp.addEventListener("input", () => { tempText.textContent = (+temp.value).toFixed(2); });
    if (recSelect) recSelect.addEventListener("change", restart);

    const controls = STATIC ? [el("label", {text: "recorded run "}, recSelect)] : [
      info.conditional ? el("label", {text: "class "}, label) : "",
      el("label", {text: "temperature "}, temp, tempText), el("label", {text: "top-k (0: all) "}, topk),
      el("label", {text: "seed "}, seed)];
    main.replaceChildren(
      el("h2", {text: info.title}),
      el("p", {class: "note", text: `The prior draws the ${h}×${w} grid of codes in raster order; the yellow cell is the ` +
        "next position, the list its most likely codes. Positions not drawn yet are decoded as the background code. " +
        (STATIC ? "This exported page replays recorded runs." :
          "Click a drawn cell, then \"resample from here\" to keep the codes before it and draw the rest anew.")}),
      el("div", {class: "controls"}, ...controls),
      el("div", {class: "controls"},
        el("button", {id: "restart", text: "restart", onclick: restart}),
        el("button", {id: "step", text: "step", onclick: stepOnce}), playBtn,
        STATIC ? "" : el("button", {id: "resample", text: "resample from here", onclick: resample})),
      el("div", {class: "row"},
        el("div", {class: "panel"}, el("h3", {text: "Codes drawn so far"}), grid, where),
        el("div", {class: "panel"}, el("h3", {text: "Decoded so far"}), decoded),
        el("div", {class: "panel"}, cands)),
    );
    await restart();
  }

  // ------------------------------------------------------------ the M2 page (styles × classes)

  async function stylesPage(info, run) {
    const K = info.classes.length, C = 28, GAP = 4, X0 = 2, Y0 = 16;  // cells start at (X0, Y0)
    const rowsMax = 1 + info.random_rows;
    const sheet = el("canvas", {id: "style-grid", width: X0 + K * (C + GAP), height: Y0 + rowsMax * (C + GAP)});
    sheet.style.width = `${2 * sheet.width}px`;
    const picked = grayCanvas("style-image", "small");
    const pickedText = el("div", {class: "mono", id: "style-image-text"});
    const probs = el("div", {class: "candidates", id: "style-probs"});
    const n = STATIC ? info.images.length : info.n;
    const index = el("input", {type: "number", id: "style-index", min: 0, max: n - 1, value: 0});
    const seed = el("input", {type: "number", id: "style-seed", min: 0, value: 0});
    const sliders = el("div", {class: "sliders", id: "style-sliders"});
    const st = {own: null, random: null, index: 0, ownLabel: "", z: new Array(info.dim).fill(0)};

    function drawRow(ctx, row, r) {
      row.forEach((im, k) => ctx.drawImage(tile(im), X0 + k * (C + GAP), Y0 + r * (C + GAP)));
    }
    function draw() {
      const ctx = sheet.getContext("2d");
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, sheet.width, sheet.height);
      ctx.fillStyle = "#555"; ctx.font = "8px sans-serif"; ctx.textAlign = "left";
      info.classes.forEach((name, k) => ctx.fillText(name.slice(0, 7), X0 + k * (C + GAP), 10));
      if (st.own) drawRow(ctx, st.own, 0);
      if (st.random) st.random.rows.forEach((row, r) => drawRow(ctx, row, r + 1));
      ctx.strokeStyle = "#1f6feb"; ctx.lineWidth = 1;
      ctx.strokeRect(0.5, Y0 - 1.5, K * (C + GAP) - GAP + 3, C + 3);  // around the top row, not on it
      app.state = {own: st.own, random: st.random && st.random.rows, seed: st.random && st.random.seed,
        index: st.index, label: st.ownLabel};
    }

    const ownLive = latest(async () => {
      const ans = await request(run, "rows", {styles: [st.z.slice()]});
      st.own = ans.rows[0]; st.ownLabel = "slider style"; draw();
    });

    const inputs = [];
    for (let d = 0; d < info.dim; d++) {
      const input = el("input", {type: "range", min: -info.slider_range, max: info.slider_range,
        step: info.slider_range / 100, value: 0, "data-dim": d});
      const value = el("span", {class: "mono", text: "0.00"});
      input.addEventListener("input", () => {
        st.z[d] = +input.value; value.textContent = (+input.value).toFixed(2); ownLive();
      });
      sliders.append(el("span", {class: "mono", text: `z[${d}]`}), input, value);
      inputs.push({input, value});
    }

    function showImage(ans) {
      st.index = ans.index; st.z = ans.style.slice(); st.own = ans.row;
      st.ownLabel = `style of test image #${ans.index}`;
      drawGray(picked, ans.image);
      const best = ans.probs.indexOf(Math.max(...ans.probs));
      pickedText.textContent = `#${ans.index} · ${info.classes[ans.label] ?? ans.label}` +
        ` · q(y|x) says ${info.classes[best] ?? best}`;
      const order = ans.probs.map((p, k) => [p, k]).sort((a, b) => b[0] - a[0]).slice(0, 3);
      probs.replaceChildren(el("h3", {text: "q(y|x), the three most likely classes"}), ...order.map(([p, k]) =>
        el("div", {class: "candidate"}, el("span", {class: "mono", text: info.classes[k] ?? String(k)}),
          el("span", {}), el("div", {class: "bar", style: `width:${Math.max(1, Math.round(140 * p))}px`}),
          el("span", {class: "mono", text: `${(100 * p).toFixed(1)}%`}))));
      inputs.forEach(({input, value}, d) => {
        input.value = st.z[d]; value.textContent = st.z[d].toFixed(2);
      });
      draw();
    }

    async function load(i) {
      showImage(STATIC ? info.images[i] : await request(run, "image", {index: i}));
    }
    async function newStyles(s) {
      st.random = STATIC ? info.random : await request(run, "random", {seed: s});
      draw();
    }
    index.addEventListener("change", () => {
      const i = Math.round(+index.value);
      if (i >= 0 && i < n) track(() => load(i));
    });
    const step = (d) => { index.value = (st.index + d + n) % n; track(() => load(+index.value)); };
    const reroll = () => {
      seed.value = (Math.max(0, Math.round(+seed.value) || 0)) + 1;
      track(() => newStyles(+seed.value));
    };
    seed.addEventListener("change", () => track(() => newStyles(Math.max(0, Math.round(+seed.value) || 0))));

    main.replaceChildren(
      el("h2", {text: info.title}),
      el("p", {class: "note", text: "M2 splits the latent into a class y and a style z. Each row is one style " +
        "drawn in every class (the columns): what a row keeps is what z holds, what changes along it is what " +
        `y holds. The framed top row is yours; the rows under it are styles drawn from the prior N(0, I). ` +
        `Its classifier q(y|x) gets ${(100 * info.accuracy).toFixed(1)} % of the page's ${info.n} test images right.` +
        (STATIC ? " This exported page shows precomputed styles; run aegen explore to move the sliders." : "")}),
      el("div", {class: "controls"},
        el("button", {text: "◀", onclick: () => step(-1)}), el("label", {text: "style of test image "}, index),
        el("button", {text: "▶", onclick: () => step(1)}),
        STATIC ? "" : el("label", {text: "prior styles, seed "}, seed),
        STATIC ? "" : el("button", {id: "style-reroll", text: "new styles", onclick: reroll})),
      el("div", {class: "row"},
        el("div", {class: "panel"}, el("h3", {text: "Same style, every class"}), sheet),
        el("div", {class: "panel"}, el("h3", {text: "The test image"}), picked, pickedText, probs)),
      STATIC ? "" : el("div", {class: "row"},
        el("div", {class: "panel"}, el("h3", {text: `The top row's style: z, ${info.dim} dimensions`}), sliders)),
    );
    await newStyles(0);
    await load(0);
  }

  // ------------------------------------------------------------ the app

  const PAGES = {latent: latentPage, vq: vqPage, prior: priorPage, styles: stylesPage};
  let runs = [];

  async function show(name) {
    const run = runs.find((r) => r.name === name) || runs[0];
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.run === run.name);
    const info = STATIC ? STATIC.pages[run.name] : await request(run.name, "info");
    await PAGES[run.kind](info, run.name);
    app.page = run.name;
  }

  async function start() {
    runs = STATIC ? STATIC.runs : (await request(null)).runs;
    const nav = document.getElementById("runs");
    nav.replaceChildren(...runs.map((r) => el("button", {"data-run": r.name, text: r.name, title: r.title,
      onclick: () => { location.hash = encodeURIComponent(r.name); }})));
    window.addEventListener("hashchange", () => show(decodeURIComponent(location.hash.slice(1))).catch(fail));
    await show(decodeURIComponent(location.hash.slice(1)));
    say(STATIC ? "static export: precomputed pictures" : "live: decoding on this machine");
  }

  // for the tests: wait until no request is in flight
  const app = window.aegenExplore = {
    page: null,
    idle: () => new Promise((resolve) => { waiting.push(resolve); settle(); }),
    ready: null,
  };
  app.ready = start().catch((e) => { fail(e); throw e; });
})();
