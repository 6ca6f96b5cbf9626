// NIfTI-1 reader for the page: (optionally gzipped) bytes -> {dims: [nx, ny, nz], spacing, rotation, data}.
// Voxel (i, j, k) is data[i + nx * (j + ny * k)], the file's own order; scl_slope/scl_inter are applied.
// rotation[w][a]: how voxel axis a moves along RAS world axis w (sform, else qform, else identity).
"use strict";

const NIFTI_TYPES = {2: Uint8Array, 4: Int16Array, 8: Int32Array, 16: Float32Array, 64: Float64Array,
                     256: Int8Array, 512: Uint16Array, 768: Uint32Array};

async function gunzipIfNeeded(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return buffer;
  const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).arrayBuffer();
}

function voxelToWorldRotation(view, little) {
  if (view.getInt16(254, little) > 0) {  // sform_code: rows srow_x, srow_y, srow_z
    return [0, 1, 2].map(w => [0, 1, 2].map(a => view.getFloat32(280 + 16 * w + 4 * a, little)));
  }
  if (view.getInt16(252, little) > 0) {  // qform_code: quaternion (b, c, d), qfac in pixdim[0]
    const [b, c, d] = [256, 260, 264].map(offset => view.getFloat32(offset, little));
    const a = Math.sqrt(Math.max(0, 1 - b * b - c * c - d * d));
    const qfac = view.getFloat32(76, little) < 0 ? -1 : 1;
    return [[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), qfac * 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, qfac * 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), qfac * (a * a + d * d - c * c - b * b)]];
  }
  return [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
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
    return {dims, spacing, rotation: voxelToWorldRotation(view, little), data: scaled};
  }
  return {dims, spacing, rotation: voxelToWorldRotation(view, little), data: raw};
}
