"""Pure text rules shared by several stages: the instruction template, subject faithfulness, the CLIP length cap,
the reward models' input formats and text-only metrics. Imports nothing above the package root."""
