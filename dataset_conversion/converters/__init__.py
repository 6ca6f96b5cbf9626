"""One module per source dataset. Each exposes ``convert(native_folder, output_folder, num_processes=None, ...)``,
documents the native layout it expects (and what about it is uncertain), and ends by writing dataset.json."""
