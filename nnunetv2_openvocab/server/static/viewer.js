// The page: submit a job, poll it, then draw the input and each prompt's mask in three views.
// Overlays are opaque on their own canvas (shown at 50% by CSS), so viewer.overlayCount counts a prompt's
// pixels exactly; where masks overlap the first listed prompt is drawn, as in the combined label map.
"use strict";

const COLOURS = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                 [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];  // tab10
const WINDOW = [-160, 240];  // soft-tissue window (level 40, width 400 HU)
// world (RAS) axes of each view, shown radiologically: patient's right on the left, anterior and superior up,
// i.e. every screen axis runs from the high world coordinate to the low one
const VIEWS = {axial: {slice: 2, x: 0, y: 1}, coronal: {slice: 1, x: 0, y: 2}, sagittal: {slice: 0, x: 1, y: 2}};
const viewer = {image: null, masks: [], prompts: []};
window.viewer = viewer;

function $(id) { return document.getElementById(id); }
function authHeaders() {
  const token = $("token").value.trim();
  return token ? {Authorization: "Bearer " + token} : {};
}
function setStatus(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {...authHeaders(), ...(options.headers || {})}});
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (e) { /* not JSON: keep the status text */ }
    throw new Error(response.status + ": " + detail);
  }
  return response;
}

function voxelIndex(coordinates) {
  const [nx, ny] = viewer.image.dims;
  return coordinates[0] + nx * (coordinates[1] + ny * coordinates[2]);
}

// the voxel axis along world axis w, and whether voxel indices grow with that world coordinate
function voxelAxis(w) {
  const row = viewer.image.rotation[w].map(Math.abs);
  const axis = row.indexOf(Math.max(...row));
  return {axis, growing: viewer.image.rotation[w][axis] > 0};
}

function sliceGeometry(name) {
  const v = VIEWS[name], dims = viewer.image.dims;
  const slice = voxelAxis(v.slice), x = voxelAxis(v.x), y = voxelAxis(v.y);
  return {slice: slice.axis, x, y, width: dims[x.axis], height: dims[y.axis], depth: dims[slice.axis]};
}

function forEachPixel(name, slice, callback) {
  const {slice: sliceAxis, x, y, width, height} = sliceGeometry(name);
  const coordinates = [0, 0, 0];
  coordinates[sliceAxis] = slice;
  for (let row = 0; row < height; row++) {
    coordinates[y.axis] = y.growing ? height - 1 - row : row;
    for (let column = 0; column < width; column++) {
      coordinates[x.axis] = x.growing ? width - 1 - column : column;
      callback(4 * (row * width + column), voxelIndex(coordinates));
    }
  }
}

function drawView(name) {
  const {width, height} = sliceGeometry(name);
  const slice = Number($(name + "-slider").value);
  const [base, overlay] = $(name).querySelectorAll("canvas");
  const basePixels = new ImageData(width, height), overlayPixels = new ImageData(width, height);
  const [low, high] = WINDOW;
  forEachPixel(name, slice, (pixel, voxel) => {
    const grey = Math.max(0, Math.min(255, 255 * (viewer.image.data[voxel] - low) / (high - low)));
    basePixels.data.set([grey, grey, grey, 255], pixel);
    const owner = viewer.masks.findIndex(mask => mask && mask.data[voxel]);
    if (owner >= 0) overlayPixels.data.set([...COLOURS[owner % COLOURS.length], 255], pixel);
  });
  base.getContext("2d").putImageData(basePixels, 0, 0);
  overlay.getContext("2d").putImageData(overlayPixels, 0, 0);
  $(name + "-label").textContent = `${name} ${slice + 1} / ${sliceGeometry(name).depth}`;
}

// pixels of prompt `index`'s colour on a view's overlay canvas (what the browser test checks)
viewer.overlayCount = function (name, index) {
  const overlay = $(name).querySelectorAll("canvas")[1];
  const pixels = overlay.getContext("2d").getImageData(0, 0, overlay.width, overlay.height).data;
  const [r, g, b] = COLOURS[index % COLOURS.length];
  let count = 0;
  for (let p = 0; p < pixels.length; p += 4) {
    if (pixels[p + 3] === 255 && pixels[p] === r && pixels[p + 1] === g && pixels[p + 2] === b) count++;
  }
  return count;
};
viewer.sliceAxis = name => sliceGeometry(name).slice;  // the voxel axis a view's slider moves along
viewer.showSlice = function (name, slice) {
  $(name + "-slider").value = slice;
  drawView(name);
};

// the slice showing most of the first prompt's mask (the middle slice when it is empty)
function busiestSlice(name, depth) {
  const first = viewer.masks.find(mask => mask);
  if (!first) return Math.floor(depth / 2);
  const counts = new Array(depth).fill(0), axis = sliceGeometry(name).slice, [nx, ny] = viewer.image.dims;
  const stride = [1, nx, nx * ny][axis];
  first.data.forEach((value, voxel) => { if (value) counts[Math.floor(voxel / stride) % depth]++; });
  const best = Math.max(...counts);
  return best > 0 ? counts.indexOf(best) : Math.floor(depth / 2);
}

function setUpViews() {
  const spacing = viewer.image.spacing, scale = 320 / Math.max(...viewer.image.dims.map((d, a) => d * spacing[a]));
  for (const name of Object.keys(VIEWS)) {
    const {x, y, width, height, depth} = sliceGeometry(name);
    const stack = $(name);
    stack.innerHTML = "";
    const cssWidth = width * spacing[x.axis] * scale, cssHeight = height * spacing[y.axis] * scale;
    stack.style.width = cssWidth + "px";
    stack.style.height = cssHeight + "px";
    for (const cls of ["image", "overlay"]) {
      const canvas = document.createElement("canvas");
      canvas.width = width; canvas.height = height; canvas.className = cls;
      canvas.style.width = cssWidth + "px"; canvas.style.height = cssHeight + "px";
      stack.appendChild(canvas);
    }
    const slider = $(name + "-slider");
    slider.max = depth - 1;
    slider.value = busiestSlice(name, depth);
    slider.oninput = () => drawView(name);
    drawView(name);
  }
  $("views").hidden = false;
}

function showResults(job) {
  const body = $("results").querySelector("tbody");
  body.innerHTML = "";
  job.results.forEach((result, index) => {
    const row = body.insertRow();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${COLOURS[index % COLOURS.length].join(",")})`;
    row.insertCell().appendChild(swatch);
    const presence = result.presence || {};
    for (const text of [result.prompt, result.route, result.labels.join(" + ") || "-", presence.status || "-",
                        presence.voxels ?? "-"]) {
      row.insertCell().textContent = text;
    }
  });
  $("results").hidden = false;
}

function showDownloads(job) {
  const list = $("downloads");
  list.innerHTML = "";
  for (const name of job.outputs) {
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = name;
    link.onclick = async (event) => {
      event.preventDefault();
      const blob = await (await api(`/jobs/${job.job_id}/outputs/${name}`)).blob();
      const save = document.createElement("a");
      save.href = URL.createObjectURL(blob);
      save.download = name.split("/").pop();
      save.click();
    };
    list.appendChild(document.createElement("li")).appendChild(link);
  }
  $("downloads-title").hidden = false;
}

async function fetchNifti(path) {
  return parseNifti(await (await api(path)).arrayBuffer());
}

async function waitForJob(jobId) {
  for (;;) {
    const job = await (await api(`/jobs/${jobId}`)).json();
    if (job.state === "done") return job;
    if (job.state === "failed") throw new Error(job.error);
    const where = job.state === "queued" ? `queued (position ${job.queue_position + 1})`
                                          : `running, ${Math.round(100 * job.progress)}% of outputs written`;
    setStatus(`Job ${jobId}: ${where}`);
    await new Promise(resolve => setTimeout(resolve, 500));
  }
}

async function run() {
  document.body.dataset.state = "running";
  const form = new FormData();
  const prompts = $("prompts").value.split("\n").map(p => p.trim()).filter(p => p);
  form.append("prompts", JSON.stringify(prompts));
  form.append("combined", "true");
  form.append("statistics", String($("statistics").checked));
  form.append("probabilities", String($("probabilities").checked));
  if ($("use-example").checked) {
    form.append("example", "true");
  } else {
    if (!$("file").files.length) throw new Error("choose a file to upload, or the example CT");
    form.append("file", $("file").files[0]);
  }
  const submitted = await (await api("/jobs", {method: "POST", body: form})).json();
  const job = await waitForJob(submitted.job_id);
  setStatus(`Job ${job.job_id}: done; loading the image and masks`);
  viewer.job = job;
  viewer.image = await fetchNifti(`/jobs/${job.job_id}/image`);
  viewer.prompts = job.results.map(r => r.prompt);
  viewer.masks = await Promise.all(job.results.map(r => r.mask ? fetchNifti(`/jobs/${job.job_id}/outputs/${r.mask}`)
                                                            : null));
  showResults(job);
  setUpViews();
  showDownloads(job);
  setStatus(`Job ${job.job_id}: done`);
  document.body.dataset.state = "ready";
}

$("run").onclick = () => run().catch(error => {
  setStatus("Error: " + error.message);
  document.body.dataset.state = "failed";
});
