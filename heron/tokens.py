"""The special tokens of Heron's prompts, shared by the model (which adds them to its tokenizer)
and the pipeline (which writes prompts with them): ``<image>`` marks where a media item sits,
``<|endofchunk|>`` ends a chunk of text (Flamingo's markers, added as OpenFlamingo adds them)."""

IMAGE_TOKEN = "<image>"
END_OF_CHUNK_TOKEN = "<|endofchunk|>"
PAD_TOKEN = "<PAD>"
EOS_TOKEN = "<|endoftext|>"
