"""SynthPS generator: deterministic synthetic person-search scenes (JPEG + COCO json with person_id).

Modules, one concept each: config (sizes), palette (named colours), appearance (the attribute
set of a person, look-alikes), identities (roster of a split), textures (clothing patterns),
style (the look of a domain: backgrounds, lighting, camera height, person scale),
person (articulated figure rendering), cameras (resolution, ground plane, lighting), background
(clutter, occluders), casting (who is in which scene), scene (composition, tight boxes),
protocol (queries with explicit galleries), coco_json (writing), generate (the pipeline),
preview (box mosaic). Loading lives in ps_plugin/data/datasets/synthps.py.
"""
from .appearance import Appearance
from .config import SIZES, SynthPSSize
from .generate import generate_synthps
from .preview import render_preview
from .style import STYLES, SynthPSStyle

__all__ = ["Appearance", "SIZES", "STYLES", "SynthPSSize", "SynthPSStyle", "generate_synthps", "render_preview"]
