"""``nnUNetv2_openvocab_serve``: an HTTP server around one loaded model (app), its job queue (jobs), upload
checks (uploads), request size limit (body_limit) and the page to try prompts (page, static/)."""
