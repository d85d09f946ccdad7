/**
 * The playground's inpainting panel: an image (the forward panel's x_0, or one of the last
 * samples), a mask painted over it at the model's resolution, and a run of `inpaintAsync` in the
 * sampling worker with the model, sampler, steps, seed, guidance and condition chosen above.
 * `document.body.dataset.inpaintState` is `idle`, `running`, `done`, `cancelled` or `error`, and
 * `dataset.inpaintStep` the last step shown (for people and the browser tests).
 */
import { drawFrame, el, forwardImage, onForwardImage, planesFrame } from './lab.js';
import type { Frame, InpaintSettings, Reply, Request, SampleSettings } from './protocol.js';

const ui = {
  source: el<HTMLSelectElement>('inp-source'),
  brush: el<HTMLInputElement>('inp-brush'),
  resample: el<HTMLInputElement>('inp-resample'),
  jump: el<HTMLInputElement>('inp-jump'),
  known: el<HTMLSelectElement>('inp-known'),
  clear: el<HTMLButtonElement>('inp-clear'),
  invert: el<HTMLButtonElement>('inp-invert'),
  run: el<HTMLButtonElement>('inp-run'),
  cancel: el<HTMLButtonElement>('inp-cancel'),
  progress: el<HTMLProgressElement>('inp-progress'),
  status: el<HTMLParagraphElement>('inp-status'),
  paint: el<HTMLCanvasElement>('inp-paint'),
  mask: el<HTMLCanvasElement>('inp-mask'),
  result: el<HTMLCanvasElement>('inp-result'),
  resultCaption: el<HTMLElement>('inp-result-caption'),
};

/** What the page gives the panel: the worker, the sampling settings, and a say in being busy. */
export interface InpaintHost {
  send(req: Request, transfer?: Transferable[]): void;
  settings(): SampleSettings;
  /** The panel runs (true) or stopped (false): the sampling controls wait meanwhile. */
  setBusy(busy: boolean): void;
}

let host: InpaintHost | null = null;
/** The input image: C planes of side × side values in [−1, 1]. */
let image: { values: Float32Array; channels: number; side: number } | null = null;
/** 1 where the image is repainted, side × side. */
let mask = new Uint8Array(0);
/** The last samples, [n, C, H, W] in [−1, 1]: inputs to pick. */
let samples: { values: Float32Array; shape: number[] } | null = null;
/** The model is loaded and the worker free. */
let available = false;
let running = false;

function setState(state: string, message: string): void {
  document.body.dataset.inpaintState = state;
  ui.status.textContent = message;
  ui.status.classList.toggle('error', state === 'error');
  running = state === 'running';
  ui.run.disabled = running || !available || image === null;
  ui.cancel.disabled = !running;
}

/** The image with the mask over it in translucent red, and the mask alone (white: repaint). */
function drawPaint(): void {
  if (image === null) return;
  const { values, channels, side } = image;
  const base = planesFrame(values, channels, side);
  const rgba = new Uint8Array(side * side * 4);
  const maskBytes = new Uint8Array(side * side);
  for (let i = 0; i < side * side; i++) {
    const m = mask[i]!;
    for (let k = 0; k < 3; k++) {
      const v = base.data[i * channels + (channels === 3 ? k : 0)]!;
      // Painted pixels: half the pixel, half red.
      rgba[i * 4 + k] = m ? Math.round(v / 2 + (k === 0 ? 127 : 0)) : v;
    }
    rgba[i * 4 + 3] = 255;
    maskBytes[i] = m ? 255 : 0;
  }
  drawFrame(ui.paint, { width: side, height: side, channels: 4, data: rgba });
  drawFrame(ui.mask, { width: side, height: side, channels: 1, data: maskBytes });
}

/** The input of the picked source; a new size clears the mask. */
function takeImage(): void {
  const pick = ui.source.value;
  let next: typeof image = null;
  if (pick === 'forward') {
    next = forwardImage();
  } else if (samples !== null) {
    const [, c, h] = samples.shape as [number, number, number, number];
    const k = Number(pick);
    const size = c * h * h;
    next = { values: samples.values.slice(k * size, (k + 1) * size), channels: c, side: h };
  }
  if (next === null) return;
  if (image === null || image.side !== next.side) mask = new Uint8Array(next.side * next.side);
  image = next;
  drawPaint();
  if (!running) ui.run.disabled = !available;
}

/** Paints (or, with Alt, erases) a brush square of the model's pixels under the pointer. */
function paintAt(e: PointerEvent): void {
  if (image === null) return;
  const side = image.side;
  const r = ui.paint.getBoundingClientRect();
  const x = Math.floor(((e.clientX - r.left) / r.width) * side);
  const y = Math.floor(((e.clientY - r.top) / r.height) * side);
  const b = Math.max(1, Math.round(ui.brush.valueAsNumber || 1));
  const lo = -Math.floor((b - 1) / 2);
  for (let dy = lo; dy < lo + b; dy++) {
    for (let dx = lo; dx < lo + b; dx++) {
      const px = x + dx;
      const py = y + dy;
      if (px >= 0 && py >= 0 && px < side && py < side) mask[py * side + px] = e.altKey ? 0 : 1;
    }
  }
  drawPaint();
}

ui.paint.addEventListener('pointerdown', (e) => {
  ui.paint.setPointerCapture(e.pointerId);
  paintAt(e);
});
ui.paint.addEventListener('pointermove', (e) => {
  if (e.buttons !== 0) paintAt(e);
});
ui.clear.addEventListener('click', () => {
  mask.fill(0);
  drawPaint();
});
ui.invert.addEventListener('click', () => {
  for (let i = 0; i < mask.length; i++) mask[i] = 1 - mask[i]!;
  drawPaint();
});
ui.source.addEventListener('change', takeImage);
onForwardImage(() => {
  if (ui.source.value === 'forward') takeImage();
});

ui.run.addEventListener('click', () => {
  if (host === null || image === null) return;
  if (!mask.includes(1)) {
    setState('error', 'Paint the pixels to repaint first: the mask is empty.');
    return;
  }
  const inpaint: InpaintSettings = {
    resample: ui.resample.valueAsNumber,
    jumpLength: ui.jump.valueAsNumber,
    knownNoise: ui.known.value === 'fixed' ? 'fixed' : 'fresh',
  };
  ui.progress.value = 0;
  document.body.dataset.inpaintStep = '0';
  setState('running', 'Starting…');
  host.setBusy(true);
  const values = image.values.slice();
  const m = Float32Array.from(mask);
  host.send({ type: 'inpaint', settings: host.settings(), inpaint, image: values, mask: m }, [
    values.buffer,
    m.buffer,
  ]);
});
ui.cancel.addEventListener('click', () => host?.send({ type: 'cancel' }));

/** Connects the panel to the page's worker and settings. */
export function initInpaint(h: InpaintHost): void {
  host = h;
  setState('idle', 'Load a model, paint a mask over the image, then Inpaint.');
}

/** The sampling panel is ready (a model loaded, the worker free) or not. */
export function setInpaintAvailable(ready: boolean): void {
  available = ready;
  if (!running) ui.run.disabled = !available || image === null;
}

/** New samples to pick as the input (their values [n, C, H, W] in [−1, 1]). */
export function samplesDone(images: { values: Float32Array; shape: number[] }): void {
  samples = images;
  const kept = ui.source.value;
  ui.source.replaceChildren(
    new Option('x₀ of the forward panel', 'forward'),
    ...Array.from(
      { length: images.shape[0]! },
      (_, k) => new Option(`sample ${k + 1} of the last run`, String(k)),
    ),
  );
  ui.source.value = kept === 'forward' || Number(kept) >= images.shape[0]! ? 'forward' : kept;
  takeImage();
}

/** A new model: the samples of the last one are not its images. */
export function modelChanged(): void {
  samples = null;
  ui.source.replaceChildren(new Option('x₀ of the forward panel', 'forward'));
  takeImage();
}

function showResult(frame: Frame): void {
  drawFrame(ui.result, frame);
}

/** A reply of the worker about an inpainting run. */
export type InpaintReply = Extract<
  Reply,
  { type: 'inpaint-progress' | 'inpaint-done' | 'cancelled' | 'error' }
>;

/** The worker's replies about an inpainting run. */
export function inpaintReply(r: InpaintReply): void {
  switch (r.type) {
    case 'inpaint-progress':
      if (r.frame !== null) showResult(r.frame);
      ui.progress.max = r.total;
      ui.progress.value = r.step;
      ui.resultCaption.textContent = `x̂₀ after step ${r.step} (kept pixels pasted)`;
      ui.status.textContent = `Step ${r.step} of ${r.total} (t = ${Math.round(r.t)})`;
      document.body.dataset.inpaintStep = String(r.step);
      break;
    case 'inpaint-done':
      showResult(r.frame);
      ui.resultCaption.textContent = 'result';
      setState(
        'done',
        `Done in ${(r.ms / 1000).toFixed(2)} s (${Math.round(r.msPerStep)} ms a step).`,
      );
      host?.setBusy(false);
      break;
    case 'cancelled':
      setState('cancelled', 'Cancelled.');
      host?.setBusy(false);
      break;
    case 'error':
      setState('error', r.message);
      host?.setBusy(false);
      break;
  }
}
