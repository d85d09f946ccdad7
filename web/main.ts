/**
 * The playground page: the controls, the progress bar and the grid. Loading and sampling run in
 * a Web Worker (worker.ts), so the page stays responsive; every step's x̂_0 grid is kept as a
 * frame of the denoising animation. `document.body.dataset.state` says where the page is
 * (loading, ready, sampling, done, cancelled, error), for people and for the browser tests, and
 * `dataset.liveTensors` the worker's live tensors once it is idle (after each load, sample or
 * inpainting). A latent model's frames arrive decoded (the worker decodes x̂_0 through the model's
 * vae); the page says so. The inpainting panel (inpaint.ts) runs in the same worker, with these
 * controls' settings; the model trained in the tab (lab.ts) is loaded here as `live`.
 */
import {
  initInpaint,
  inpaintReply,
  modelChanged,
  samplesDone,
  setInpaintAvailable,
} from './inpaint.js';
import { drawFrame, el, LIVE_FOLDER, liveModelFiles, modelLoaded, onUseLiveModel } from './lab.js';
import {
  type BackendChoice,
  type Frame,
  MODELS,
  type ModelSummary,
  type Reply,
  type Request,
  type SampleSettings,
} from './protocol.js';

const ui = {
  model: el<HTMLSelectElement>('model'),
  backend: el<HTMLSelectElement>('backend'),
  sampler: el<HTMLSelectElement>('sampler'),
  steps: el<HTMLInputElement>('steps'),
  n: el<HTMLInputElement>('n'),
  seed: el<HTMLInputElement>('seed'),
  guidance: el<HTMLInputElement>('guidance'),
  classId: el<HTMLSelectElement>('class'),
  prompt: el<HTMLInputElement>('prompt'),
  form: el<HTMLFormElement>('controls'),
  sample: el<HTMLButtonElement>('sample'),
  cancel: el<HTMLButtonElement>('cancel'),
  progress: el<HTMLProgressElement>('progress'),
  status: el<HTMLParagraphElement>('status'),
  latentNote: el<HTMLParagraphElement>('latent-note'),
  grid: el<HTMLCanvasElement>('grid'),
  animation: el<HTMLDivElement>('animation'),
  frame: el<HTMLInputElement>('frame'),
  frameLabel: el<HTMLSpanElement>('frame-label'),
  play: el<HTMLButtonElement>('play'),
  download: el<HTMLAnchorElement>('download'),
};

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (req: Request, transfer: Transferable[] = []): void =>
  worker.postMessage(req, transfer);

let model: ModelSummary | null = null;
let frames: Frame[] = [];
let playing: number | null = null;
/** The prompt the last model offered (replaced by the next model's while left as it was). */
let offeredPrompt = ui.prompt.value;
/** The models this build of the site holds (web/vite.config.ts). */
const built = new Set(__SUMI_MODELS__);

/** The inpainting panel has a run in the worker. */
let inpainting = false;

function setState(state: string, message: string, error = false): void {
  document.body.dataset.state = state;
  ui.status.textContent = message;
  ui.status.classList.toggle('error', error);
  updateControls();
}

/** What can be clicked: nothing that needs the worker while it loads, samples or inpaints. */
function updateControls(): void {
  const state = document.body.dataset.state;
  const busy = state === 'loading' || state === 'sampling' || inpainting;
  ui.sample.disabled = busy || model === null;
  ui.cancel.disabled = state !== 'sampling';
  ui.model.disabled = busy;
  ui.backend.disabled = busy;
  setInpaintAvailable(!busy && model !== null);
}

function draw(frame: Frame): void {
  drawFrame(ui.grid, frame);
}

function showFrame(i: number): void {
  const f = frames[i];
  if (f === undefined) return;
  draw(f);
  ui.frame.value = String(i);
  ui.frameLabel.textContent = `${i + 1} / ${frames.length}`;
}

function stopPlaying(): void {
  if (playing !== null) clearInterval(playing);
  playing = null;
  ui.play.textContent = 'Play';
}

function showControls(m: ModelSummary): void {
  for (const e of document.querySelectorAll<HTMLElement>('.cond')) e.hidden = !m.hasNull;
  for (const e of document.querySelectorAll<HTMLElement>('.class-only')) {
    e.hidden = m.conditioning !== 'class';
  }
  for (const e of document.querySelectorAll<HTMLElement>('.text-only')) {
    e.hidden = m.conditioning !== 'text';
  }
  ui.classId.replaceChildren(
    new Option('each class in turn', '-1'),
    ...m.classNames.map((name, i) => new Option(name, String(i))),
  );
  const prompt = MODELS.find((e) => e.name === m.name)?.prompt;
  if (m.conditioning === 'text' && prompt !== undefined && ui.prompt.value === offeredPrompt) {
    ui.prompt.value = prompt;
    offeredPrompt = prompt;
  }
  ui.latentNote.hidden = m.latent === null;
  if (m.latent !== null) {
    const [c, h, w] = m.latent.shape;
    ui.latentNote.textContent =
      `A latent diffusion model: the sampler works on ${c}×${h}×${w} latents, and every frame ` +
      `shown (x̂_0 after each step, then x_0) is decoded by its ${m.latent.vaeClass} to ` +
      `${m.channels === 3 ? 'RGB' : `${m.channels}-channel`} ${m.imageSize}×${m.imageSize} images.`;
  }
}

function loadModel(): void {
  model = null;
  stopPlaying();
  setState('loading', `Loading ${ui.model.value}…`);
  delete document.body.dataset.liveTensors;
  const name = ui.model.value;
  ui.latentNote.hidden = true;
  if (name === 'live') {
    const live = liveModelFiles();
    if (live === null) {
      setState(
        'error',
        'live: no model was trained in this tab yet (Train, then Stop, below)',
        true,
      );
      return;
    }
    send({
      type: 'load',
      model: `${LIVE_FOLDER} (trained in this tab, step ${live.step})`,
      url: LIVE_FOLDER,
      backend: ui.backend.value as BackendChoice,
      files: live.files,
    });
    return;
  }
  if (!built.has(name)) {
    setState(
      'error',
      `${name} is not in this build of the playground: models/${name}/ was not in the ` +
        'repository when the site was built or served',
      true,
    );
    return;
  }
  const url = new URL(`models/${name}`, document.baseURI).href;
  send({ type: 'load', model: name, url, backend: ui.backend.value as BackendChoice });
}

worker.onmessage = (e: MessageEvent<Reply>) => {
  const r = e.data;
  const forInpainting =
    r.type === 'inpaint-progress' ||
    r.type === 'inpaint-done' ||
    ((r.type === 'cancelled' || r.type === 'error') && r.job === 'inpaint');
  if (forInpainting) {
    inpaintReply(r);
    return;
  }
  switch (r.type) {
    case 'loaded':
      model = r.model;
      showControls(r.model);
      modelLoaded(r.model);
      modelChanged();
      setState(
        'ready',
        `${r.model.name}: ${(r.model.parameters / 1e6).toFixed(2)} M parameters on ` +
          `${r.model.backend}, loaded in ${Math.round(r.model.loadMs)} ms`,
      );
      break;
    case 'progress':
      frames.push(r.frame);
      draw(r.frame);
      ui.progress.max = r.total;
      ui.progress.value = r.step;
      ui.status.textContent =
        `Step ${r.step} of ${r.total} (t = ${Math.round(r.t)})` +
        (model?.latent ? ': x̂_0 decoded' : '');
      document.body.dataset.step = String(r.step);
      break;
    case 'done': {
      frames.push(r.frame);
      ui.frame.max = String(frames.length - 1);
      showFrame(frames.length - 1);
      ui.animation.hidden = false;
      URL.revokeObjectURL(ui.download.href);
      ui.download.href = URL.createObjectURL(new Blob([r.png as BlobPart], { type: 'image/png' }));
      samplesDone(r.images);
      setState(
        'done',
        `Done in ${(r.ms / 1000).toFixed(2)} s (${Math.round(r.msPerStep)} ms a step on ` +
          `${model?.backend ?? '?'})`,
      );
      break;
    }
    case 'cancelled':
      setState('cancelled', 'Cancelled.');
      break;
    case 'idle':
      document.body.dataset.liveTensors = String(r.liveTensors);
      break;
    case 'error':
      setState('error', r.message, true);
      break;
  }
};

worker.onerror = (e) => setState('error', `the worker failed: ${e.message}`, true);

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  stopPlaying();
  frames = [];
  ui.animation.hidden = true;
  ui.progress.value = 0;
  document.body.dataset.step = '0';
  delete document.body.dataset.liveTensors;
  setState('sampling', 'Starting…');
  send({ type: 'sample', settings: sampleSettings() });
});

/** The settings of the controls (sampling, and the inpainting panel's run). */
function sampleSettings(): SampleSettings {
  return {
    sampler: ui.sampler.value,
    steps: ui.steps.valueAsNumber,
    seed: ui.seed.valueAsNumber,
    n: ui.n.valueAsNumber,
    guidance: ui.guidance.valueAsNumber,
    classId: Number(ui.classId.value || '-1'),
    prompt: ui.prompt.value,
  };
}

initInpaint({
  send,
  settings: sampleSettings,
  setBusy(busy) {
    inpainting = busy;
    // Set again by the worker once the run has ended and it is idle.
    if (busy) delete document.body.dataset.liveTensors;
    updateControls();
  },
});

onUseLiveModel(() => {
  const live = liveModelFiles();
  // While the worker loads, samples or inpaints, the model stays (as the Model menu does).
  if (live === null || ui.model.disabled) return;
  let option = [...ui.model.options].find((o) => o.value === 'live');
  if (option === undefined) {
    option = new Option('', 'live');
    ui.model.append(option);
  }
  option.textContent = `Trained in this tab (step ${live.step})`;
  ui.model.value = 'live';
  loadModel();
});

ui.cancel.addEventListener('click', () => send({ type: 'cancel' }));
ui.model.addEventListener('change', loadModel);
ui.backend.addEventListener('change', loadModel);
ui.frame.addEventListener('input', () => {
  stopPlaying();
  showFrame(ui.frame.valueAsNumber);
});
ui.play.addEventListener('click', () => {
  if (playing !== null) return stopPlaying();
  let i = 0;
  ui.play.textContent = 'Stop';
  playing = window.setInterval(() => {
    showFrame(i);
    if (++i >= frames.length) stopPlaying();
  }, 120);
});

const params = new URLSearchParams(location.search);
for (const m of MODELS) {
  const label = built.has(m.name) ? m.label : `${m.label}: not in this build`;
  ui.model.append(new Option(label, m.name));
}
ui.model.value = params.get('model') ?? 'mnist-small';
ui.backend.value = params.get('backend') ?? 'auto';
loadModel();
