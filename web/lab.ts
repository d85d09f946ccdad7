/**
 * The playground's forward-process and live-training panels; the work runs in the lab worker
 * (lab-worker.ts). `document.body.dataset.trainState` is `idle`, `training`, `stopped` or
 * `error`, `dataset.trainStep` the last step, and `globalThis.playgroundLosses` every step's loss
 * (for people and the browser tests); `dataset.forwardT` the t of the x_t shown and
 * `dataset.forwardSource` where x_0 comes from (`digit`, `drawing` or `upload`). A stopped run's
 * model arrives as a pipeline folder's files: the page samples from it and zips it for download
 * (`dataset.liveModel` its step).
 */
import { zipSync } from 'fflate';

import {
  type BackendChoice,
  DIGITS,
  type Frame,
  type LabReply,
  type LabRequest,
  type ModelSummary,
} from './protocol.js';

declare global {
  var playgroundLosses: number[];
}

/** The page's element #id (an error naming it when the page lacks it). */
export function el<T extends Element>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`playground: no element #${id}`);
  return e as unknown as T;
}

/** Draws an 8-bit frame (gray, gray + alpha, RGB or RGBA) on a canvas at its own size. */
export function drawFrame(canvas: HTMLCanvasElement, frame: Frame): void {
  const { width, height, channels, data } = frame;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const px = data.subarray(i * channels, (i + 1) * channels);
    const gray = channels < 3;
    rgba[i * 4] = px[0]!;
    rgba[i * 4 + 1] = gray ? px[0]! : px[1]!;
    rgba[i * 4 + 2] = gray ? px[0]! : px[2]!;
    rgba[i * 4 + 3] = channels === 2 ? px[1]! : channels === 4 ? px[3]! : 255;
  }
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d')!.putImageData(new ImageData(rgba, width, height), 0, 0);
}

const ui = {
  digit: el<HTMLSelectElement>('fwd-digit'),
  file: el<HTMLInputElement>('fwd-file'),
  draw: el<HTMLCanvasElement>('fwd-draw'),
  drawClear: el<HTMLButtonElement>('fwd-draw-clear'),
  drawColor: el<HTMLInputElement>('fwd-draw-color'),
  seed: el<HTMLInputElement>('fwd-seed'),
  t: el<HTMLInputElement>('fwd-t'),
  tLabel: el<HTMLSpanElement>('fwd-t-label'),
  x0: el<HTMLCanvasElement>('fwd-x0'),
  xt: el<HTMLCanvasElement>('fwd-xt'),
  xtCaption: el<HTMLElement>('fwd-xt-caption'),
  note: el<HTMLParagraphElement>('fwd-note'),
  plot: el<SVGSVGElement>('fwd-plot'),
  backend: el<HTMLSelectElement>('backend'),
  batch: el<HTMLInputElement>('train-batch'),
  lr: el<HTMLInputElement>('train-lr'),
  trainSeed: el<HTMLInputElement>('train-seed'),
  every: el<HTMLInputElement>('train-every'),
  start: el<HTMLButtonElement>('train-start'),
  stop: el<HTMLButtonElement>('train-stop'),
  status: el<HTMLParagraphElement>('train-status'),
  lossPlot: el<SVGSVGElement>('loss-plot'),
  grid: el<HTMLCanvasElement>('train-grid'),
  gridCaption: el<HTMLElement>('train-grid-caption'),
  live: el<HTMLDivElement>('live-model'),
  liveSample: el<HTMLButtonElement>('live-sample'),
  liveDownload: el<HTMLAnchorElement>('live-download'),
  liveNote: el<HTMLSpanElement>('live-note'),
};

const lab = new Worker(new URL('./lab-worker.ts', import.meta.url), { type: 'module' });
const send = (req: LabRequest, transfer: Transferable[] = []): void =>
  lab.postMessage(req, transfer);

let digits: Uint8Array | null = null;
/** The model whose schedule the forward panel uses, and x_0 at its size in [−1, 1] (C planes). */
let scheduler: Record<string, unknown> | null = null;
let side: number = DIGITS.side;
let channels = 1;
let x0: Float32Array | null = null;
/** Where x_0 comes from: the picked digit, the drawing canvas or the uploaded image. */
let source: 'digit' | 'drawing' | 'upload' = 'digit';
/** The uploaded image, kept to resize when the model changes. */
let uploaded: ImageBitmap | null = null;
/** Told of every new x_0 (the inpainting panel's input). */
const x0Listeners: (() => void)[] = [];
let plotted: Float64Array | null = null;
globalThis.playgroundLosses = [];

const SVG = 'http://www.w3.org/2000/svg';
function svgEl(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A polyline of (x, y) in a plot box of 40..340 × 20..150. */
function line(xs: ArrayLike<number>, ys: ArrayLike<number>, color: string): SVGElement {
  const pts: string[] = [];
  for (let i = 0; i < xs.length; i++) pts.push(`${xs[i]!.toFixed(1)},${ys[i]!.toFixed(1)}`);
  return svgEl('polyline', {
    points: pts.join(' '),
    fill: 'none',
    stroke: color,
    'stroke-width': 1.5,
  });
}

function axes(svg: SVGSVGElement, xLabel: string): void {
  svg.replaceChildren(
    svgEl('rect', { x: 40, y: 20, width: 300, height: 130, fill: 'none', stroke: '#bbb' }),
    svgEl('text', { x: 190, y: 172, 'text-anchor': 'middle' }, xLabel),
  );
}

/** ᾱ_t (left axis, 0..1) and log SNR = log(ᾱ_t / (1 − ᾱ_t)) (right axis) over t, a marker at t. */
function plotSchedule(acp: Float64Array, t: number): void {
  const T = acp.length;
  const X = (s: number): number => 40 + (300 * s) / Math.max(1, T - 1);
  const logSnr = Array.from(acp, (a) => Math.log(a / (1 - a)));
  const finite = logSnr.filter(Number.isFinite);
  const lo = Math.floor(Math.min(...finite));
  const hi = Math.ceil(Math.max(...finite));
  const xs = Array.from(acp, (_, s) => X(s));
  const clamp = (v: number): number => Math.min(hi, Math.max(lo, Number.isFinite(v) ? v : lo));
  axes(ui.plot, `t (0 … ${T - 1})`);
  ui.plot.append(
    line(
      xs,
      Array.from(acp, (a) => 150 - 130 * a),
      '#1565c0',
    ),
    line(
      xs,
      logSnr.map((v) => 150 - (130 * (clamp(v) - lo)) / (hi - lo)),
      '#c62828',
    ),
    svgEl('line', { x1: X(t), x2: X(t), y1: 20, y2: 150, stroke: '#333', 'stroke-dasharray': 3 }),
    svgEl('text', { x: 36, y: 24, 'text-anchor': 'end', fill: '#1565c0' }, '1'),
    svgEl('text', { x: 36, y: 150, 'text-anchor': 'end', fill: '#1565c0' }, '0'),
    svgEl('text', { x: 44, y: 14, fill: '#1565c0' }, 'ᾱ_t'),
    svgEl('text', { x: 344, y: 24, fill: '#c62828' }, String(hi)),
    svgEl('text', { x: 344, y: 150, fill: '#c62828' }, String(lo)),
    svgEl('text', { x: 336, y: 14, 'text-anchor': 'end', fill: '#c62828' }, 'log SNR'),
  );
}

/**
 * x_0 from the picked digit, the drawing or the uploaded image, resized to side × side, as
 * `channels` planes of values in [−1, 1]: RGB, or gray for a 1-channel model.
 */
function sourceImage(): Float32Array | null {
  const c = new OffscreenCanvas(side, side);
  const g = c.getContext('2d')!;
  g.imageSmoothingQuality = 'high';
  if (source === 'upload' && uploaded !== null) {
    g.drawImage(uploaded, 0, 0, side, side);
  } else if (source === 'drawing') {
    g.drawImage(ui.draw, 0, 0, side, side);
  } else if (digits !== null) {
    const px = DIGITS.side * DIGITS.side;
    const at = Number(ui.digit.value) * DIGITS.perDigit * px;
    const rgba = new Uint8ClampedArray(px * 4);
    for (let i = 0; i < px; i++) {
      rgba.fill(digits[at + i]!, i * 4, i * 4 + 3);
      rgba[i * 4 + 3] = 255;
    }
    const d = new OffscreenCanvas(DIGITS.side, DIGITS.side);
    d.getContext('2d')!.putImageData(new ImageData(rgba, DIGITS.side, DIGITS.side), 0, 0);
    g.drawImage(d, 0, 0, side, side);
  } else {
    return null;
  }
  const rgba = g.getImageData(0, 0, side, side).data;
  const px = side * side;
  if (channels === 3) {
    // R, G and B planes, each mapped from [0, 255] to [−1, 1].
    return Float32Array.from({ length: 3 * px }, (_, k) => {
      const i = k % px;
      return (rgba[i * 4 + Math.floor(k / px)]! / 255) * 2 - 1;
    });
  }
  // Luma (ITU-R BT.601) of each pixel, mapped from [0, 255] to [−1, 1].
  return Float32Array.from({ length: px }, (_, i) => {
    const y = 0.299 * rgba[i * 4]! + 0.587 * rgba[i * 4 + 1]! + 0.114 * rgba[i * 4 + 2]!;
    return (y / 255) * 2 - 1;
  });
}

/** An 8-bit frame of C planes of side × side values in [−1, 1] (0 ↦ −1, 255 ↦ 1). */
export function planesFrame(values: Float32Array, c: number, side: number): Frame {
  const px = side * side;
  const data = new Uint8Array(c * px);
  for (let i = 0; i < px; i++) {
    for (let k = 0; k < c; k++) {
      const v = Math.min(1, Math.max(-1, values[k * px + i]!));
      data[i * c + k] = Math.round(((v + 1) / 2) * 255);
    }
  }
  return { width: side, height: side, channels: c, data };
}

/** The forward panel's x_0 (its planes, channels and side), or null before there is one. */
export function forwardImage(): { values: Float32Array; channels: number; side: number } | null {
  return x0 === null ? null : { values: x0, channels, side };
}

/** `fn` is called whenever x_0 changes (source, drawing, model). */
export function onForwardImage(fn: () => void): void {
  x0Listeners.push(fn);
}

function showX0(): void {
  x0 = sourceImage();
  if (x0 === null) return;
  document.body.dataset.forwardSource = source;
  drawFrame(ui.x0, planesFrame(x0, channels, side));
  requestForward();
  for (const fn of x0Listeners) fn();
}

function requestForward(): void {
  if (scheduler === null || x0 === null) return;
  send({
    type: 'forward',
    scheduler,
    image: x0.slice(),
    channels,
    side,
    t: ui.t.valueAsNumber,
    seed: ui.seed.valueAsNumber || 0,
  });
}

/** The sampling model changed: its schedule and size for the forward panel. */
export function modelLoaded(m: ModelSummary): void {
  scheduler = m.scheduler;
  side = m.imageSize;
  channels = m.channels === 3 ? 3 : 1;
  const T = Number(m.scheduler.num_train_timesteps ?? 1000);
  ui.t.max = String(T - 1);
  // The panel stays in pixel space: a latent model's x_t are latents, which it does not show.
  ui.note.hidden = m.latent === null;
  if (m.latent !== null) {
    ui.note.textContent =
      `${m.name} is a latent model: it denoises the ${m.latent.shape.join('×')} latents of its ` +
      `${m.latent.vaeClass} on this schedule. This panel applies the same q(x_t | x_0) to ` +
      `pixels (${channels === 3 ? 'RGB' : 'gray'}, ${m.imageSize}×${m.imageSize}), not to ` +
      'those latents.';
  }
  plotted = null;
  showX0();
}

function plotLosses(): void {
  const losses = globalThis.playgroundLosses;
  axes(ui.lossPlot, `step (1 … ${losses.length})`);
  if (losses.length === 0) return;
  const top = Math.max(...losses.slice(0, 20));
  const X = (i: number): number => 40 + (300 * i) / Math.max(1, losses.length - 1);
  const Y = (v: number): number => 150 - (130 * Math.min(v, top)) / top;
  // The loss of each step, and its mean over the last 20 steps.
  const avg = losses.map((_, i) => {
    const w = losses.slice(Math.max(0, i - 19), i + 1);
    return w.reduce((a, b) => a + b, 0) / w.length;
  });
  const xs = losses.map((_, i) => X(i));
  ui.lossPlot.append(
    line(xs, losses.map(Y), '#90a4ae'),
    line(xs, avg.map(Y), '#c62828'),
    svgEl('text', { x: 36, y: 24, 'text-anchor': 'end' }, top.toFixed(2)),
    svgEl('text', { x: 36, y: 150, 'text-anchor': 'end' }, '0'),
    svgEl('text', { x: 44, y: 14 }, 'loss (gray: each step; red: mean of the last 20)'),
  );
}

function setTrainState(state: string, message: string): void {
  document.body.dataset.trainState = state;
  ui.status.textContent = message;
  ui.status.classList.toggle('error', state === 'error');
  ui.start.disabled = state === 'training' || digits === null;
  ui.stop.disabled = state !== 'training';
}

let trainInfo = '';
lab.onmessage = (e: MessageEvent<LabReply>) => {
  const r = e.data;
  switch (r.type) {
    case 'forward': {
      drawFrame(ui.xt, r.frame);
      const a = r.alphasCumprod[r.t]!;
      ui.xtCaption.textContent = `x_t, t = ${r.t}`;
      ui.tLabel.textContent = `${r.t}: ᾱ_t = ${a.toFixed(4)}, log SNR = ${Math.log(a / (1 - a)).toFixed(2)}`;
      if (plotted !== r.alphasCumprod) plotted = r.alphasCumprod;
      plotSchedule(plotted, r.t);
      document.body.dataset.forwardT = String(r.t);
      break;
    }
    case 'train-started':
      trainInfo = `${(r.parameters / 1e3).toFixed(0)} K parameters on ${r.backend}`;
      setTrainState('training', `Training: ${trainInfo}`);
      break;
    case 'train-step':
      globalThis.playgroundLosses.push(r.loss);
      document.body.dataset.trainStep = String(r.step);
      ui.status.textContent =
        `Step ${r.step}: loss ${r.loss.toFixed(4)}, ${Math.round(r.msPerStep)} ms a step ` +
        `(${trainInfo})`;
      if (r.step % 5 === 0 || r.step < 5) plotLosses();
      break;
    case 'train-sample':
      drawFrame(ui.grid, r.frame);
      ui.gridCaption.textContent = `samples after ${r.step} steps`;
      break;
    case 'train-model':
      liveModel = { step: r.step, files: r.files };
      showLiveModel();
      break;
    case 'train-stopped':
      plotLosses();
      if (document.body.dataset.trainState !== 'error') {
        setTrainState('stopped', `Stopped after ${r.step} steps (${trainInfo}).`);
      }
      break;
    case 'lab-error':
      setTrainState('error', r.message);
      break;
  }
};
lab.onerror = (e) => setTrainState('error', `the lab worker failed: ${e.message}`);

ui.start.addEventListener('click', () => {
  if (digits === null) return;
  globalThis.playgroundLosses = [];
  document.body.dataset.trainStep = '0';
  setTrainState('training', 'Starting…');
  send({
    type: 'train',
    settings: {
      seed: ui.trainSeed.valueAsNumber || 0,
      batch: ui.batch.valueAsNumber,
      lr: ui.lr.valueAsNumber,
      sampleEvery: Math.max(1, ui.every.valueAsNumber),
      backend: ui.backend.value as BackendChoice,
    },
    digits: digits.slice(),
  });
});
ui.stop.addEventListener('click', () => send({ type: 'stop' }));

/** The last stopped run's model: a pipeline folder's files by path. */
let liveModel: { step: number; files: Record<string, Uint8Array> } | null = null;
let useLiveModel: (() => void) | null = null;

/** The folder the download holds (the zip's one top folder). */
export const LIVE_FOLDER = 'sumi-live-model';

/** The model trained in the tab (after a run stopped), or null. */
export function liveModelFiles(): { step: number; files: Record<string, Uint8Array> } | null {
  return liveModel;
}

/** `fn` loads the live model into the sampling panel ("Sample from it"). */
export function onUseLiveModel(fn: () => void): void {
  useLiveModel = fn;
}

/**
 * The stopped run's model: "Sample from it" and a zip of its folder (stored, not deflated: the
 * weights are float32 noise to a compressor, and fflate's zipSync is all the page needs of a zip
 * writer).
 */
function showLiveModel(): void {
  if (liveModel === null) return;
  const entries: Record<string, Uint8Array> = {};
  for (const [path, bytes] of Object.entries(liveModel.files)) {
    entries[`${LIVE_FOLDER}/${path}`] = bytes;
  }
  const zip = zipSync(entries, { level: 0 });
  URL.revokeObjectURL(ui.liveDownload.href);
  ui.liveDownload.href = URL.createObjectURL(new Blob([zip], { type: 'application/zip' }));
  ui.liveDownload.download = `${LIVE_FOLDER}-step-${liveModel.step}.zip`;
  ui.liveNote.textContent =
    `the model after ${liveModel.step} steps: unet/ (config.json, ` +
    `diffusion_pytorch_model.safetensors), scheduler/, model_index.json, sumi.json; ` +
    `${(zip.length / 1024).toFixed(0)} KB`;
  ui.live.hidden = false;
  document.body.dataset.liveModel = String(liveModel.step);
}
ui.liveSample.addEventListener('click', () => useLiveModel?.());
ui.t.addEventListener('input', requestForward);
ui.seed.addEventListener('input', requestForward);
ui.digit.addEventListener('change', () => {
  uploaded = null;
  ui.file.value = '';
  source = 'digit';
  showX0();
});
ui.file.addEventListener('change', () => {
  const f = ui.file.files?.[0];
  if (f === undefined) return;
  createImageBitmap(f)
    .then((b) => {
      uploaded = b;
      source = 'upload';
      showX0();
    })
    .catch((err: unknown) => {
      ui.tLabel.textContent = `${f.name}: not an image the browser decodes (${String(err)})`;
    });
});

// The drawing canvas: strokes in the chosen colour (white by default, as MNIST's digits) on
// black, with the mouse, a pen or a finger; x_0 is the canvas resized to the model's size.
const pen = ui.draw.getContext('2d')!;
function clearDrawing(): void {
  pen.fillStyle = '#000';
  pen.fillRect(0, 0, ui.draw.width, ui.draw.height);
}
clearDrawing();
let last: [number, number] | null = null;
let redraw = 0;
/** The pointer's position in the canvas's own pixels. */
function at(e: PointerEvent): [number, number] {
  const r = ui.draw.getBoundingClientRect();
  return [
    ((e.clientX - r.left) / r.width) * ui.draw.width,
    ((e.clientY - r.top) / r.height) * ui.draw.height,
  ];
}
function stroke(e: PointerEvent): void {
  const p = at(e);
  const from = last ?? p;
  pen.strokeStyle = ui.drawColor.value;
  pen.lineWidth = ui.draw.width / 10;
  pen.lineCap = 'round';
  pen.lineJoin = 'round';
  pen.beginPath();
  pen.moveTo(from[0], from[1]);
  pen.lineTo(p[0], p[1]);
  pen.stroke();
  last = p;
  source = 'drawing';
  // One new x_0 per frame, however many pointer events arrive.
  if (redraw === 0) {
    redraw = requestAnimationFrame(() => {
      redraw = 0;
      showX0();
    });
  }
}
ui.draw.addEventListener('pointerdown', (e) => {
  ui.draw.setPointerCapture(e.pointerId);
  last = null;
  stroke(e);
});
ui.draw.addEventListener('pointermove', (e) => {
  if (e.buttons !== 0) stroke(e);
});
ui.draw.addEventListener('pointerup', () => (last = null));
ui.drawClear.addEventListener('click', () => {
  clearDrawing();
  source = 'drawing';
  showX0();
});

for (let d = 0; d < 10; d++) ui.digit.append(new Option(`a ${d}`, String(d)));
setTrainState('idle', 'Loading the digits…');
fetch(new URL(DIGITS.url, document.baseURI))
  .then(async (res) => {
    if (!res.ok) throw new Error(`${res.url}: HTTP ${res.status} ${res.statusText}`);
    digits = new Uint8Array(await res.arrayBuffer());
    setTrainState('idle', `${digits.length / (DIGITS.side * DIGITS.side)} digits loaded.`);
    showX0();
  })
  .catch((err: unknown) =>
    setTrainState('error', err instanceof Error ? err.message : String(err)),
  );
