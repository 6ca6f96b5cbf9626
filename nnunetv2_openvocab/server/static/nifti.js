// NIfTI-1 reader for the page: (optionally gzipped) bytes -> {dims: [nx, ny, nz], spacing, data}.
// Voxel (i, j, k) is data[i + nx * (j + ny * k)], the file's own order; scl_slope/scl_inter are applied.
"use strict";

const NIFTI_TYPES = {2: Uint8Array, 4: Int16Array, 8: Int32Array, 16: Float32Array, 64: Float64Array,
                     256: Int8Array, 512: Uint16Array, 768: Uint32Array};

async function gunzipIfNeeded(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return buffer;
  const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).arrayBuffer();
}

async function parseNifti(buffer) {
  buffer = await gunzipIfNeeded(buffer);
  const view = new DataView(buffer);
  const little = view.getInt32(0, true) === 348;
  if (!little && view.getInt32(0, false) !== 348) throw new Error("not a NIfTI-1 file");
  const dims = [1, 2, 3].map(d => view.getInt16(40 + 2 * d, little));
  const spacing = [1, 2, 3].map(d => Math.abs(view.getFloat32(76 + 4 * d, little)) || 1);
  const datatype = view.getInt16(70, little);
  const offset = view.getFloat32(108, little);
  const slope = view.getFloat32(112, little), intercept = view.getFloat32(116, little);
  const Type = NIFTI_TYPES[datatype];
  if (!Type) throw new Error("unsupported NIfTI datatype " + datatype);
  if (!little && Type.BYTES_PER_ELEMENT > 1) throw new Error("big-endian NIfTI is not supported by the page");
  const count = dims[0] * dims[1] * dims[2];
  const raw = new Type(buffer.slice(offset, offset + count * Type.BYTES_PER_ELEMENT));
  if (slope && (slope !== 1 || intercept !== 0)) {
    const scaled = new Float32Array(count);
    for (let n = 0; n < count; n++) scaled[n] = raw[n] * slope + intercept;
    return {dims, spacing, data: scaled};
  }
  return {dims, spacing, data: raw};
}
