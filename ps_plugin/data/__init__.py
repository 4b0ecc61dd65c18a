"""Datasets, mapper, samplers and SynthPS. `import ps_plugin` registers the builtin datasets."""
