"""Wire objects and their rules: schema, kinds, codec, defaults, validation, patch, printers, errors."""
