"""Captions of SynthFashion people and of their parsing regions, for ``truepose train-clip``.

METHOD.md's CLIP is a frozen, contrastively pretrained image tower: its region embeddings tell
CAA what a region looks like. No CLIP weights can be downloaded here, and a tower with random
weights keeps little of a region's colour, so the SynthFashion model's tower is pretrained
CLIP-style on SynthFashion images against these captions. They name what the renderer
drew: each garment's colours and pattern, the skin, hair, shoes and background. Colours
are named, as people write them, from a fixed vocabulary (:func:`colour_name`).
"""

from __future__ import annotations

import colorsys

from .synthfashion import Garment, Identity

_HUES = (
    "red",
    "orange",
    "amber",
    "yellow",
    "lime",
    "green",
    "jade",
    "teal",
    "cyan",
    "azure",
    "blue",
    "indigo",
    "violet",
    "purple",
    "magenta",
    "pink",
)

_PATTERN_WORDS = {
    "stripes_h": "horizontal stripes",
    "stripes_v": "vertical stripes",
    "stripes_d": "diagonal stripes",
    "checks": "checks",
    "dots": "dots",
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    """A colour's name: a grey level, or a hue of 16 with a lightness and a saturation word."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    if v < 0.18:
        return "black"
    if s < 0.18:
        greys = ("dark grey", "grey", "light grey", "white")
        return greys[min(3, int((v - 0.18) / 0.82 * 4))]
    hue = _HUES[int(round(h * len(_HUES))) % len(_HUES)]
    light = "dark " if v < 0.45 else ("bright " if v > 0.8 else "")
    sat = "pale " if s < 0.45 else ("deep " if s > 0.8 else "")
    return f"{sat}{light}{hue}"


def _a(phrase: str) -> str:
    """The phrase with its indefinite article."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def garment_phrase(g: Garment, noun: str) -> str:
    """'a green shirt with pink dots and a black print', 'a plain red skirt'."""
    a = colour_name(g.color_a)
    if g.pattern == "plain":
        phrase = f"a plain {a} {noun}"
    else:
        phrase = f"{_a(a)} {noun} with {colour_name(g.color_b)} {_PATTERN_WORDS[g.pattern]}"
    if g.text is not None:
        phrase += f" and {_a(colour_name(g.text_color))} print"
    return phrase


def person_caption(identity: Identity) -> str:
    """The whole image: the person's clothes, skin and hair, and the background."""
    sleeves = "long-sleeved" if identity.long_sleeves else "short-sleeved"
    shirt = garment_phrase(identity.shirt, f"{sleeves} shirt")
    if identity.lower == "skirt":
        lower = garment_phrase(identity.skirt, "skirt")
    else:
        lower = f"{colour_name(identity.pants)} trousers"
    return (
        f"a person with {colour_name(identity.skin)} skin and {identity.hair_style} "
        f"{colour_name(identity.hair)} hair wearing {shirt}, {lower} and "
        f"{colour_name(identity.shoes)} shoes on a {colour_name(identity.background)} background"
    )


def region_caption(identity: Identity, label: str) -> str:
    """One parsing region of the person, by its LIP label name; '' for labels never drawn."""
    skin = colour_name(identity.skin)
    if label == "Upper-clothes":
        return garment_phrase(identity.shirt, "shirt")
    if label == "Skirt":
        return garment_phrase(identity.skirt, "skirt")
    if label == "Pants":
        return f"{colour_name(identity.pants)} trousers"
    if label == "Face":
        return f"a face with {skin} skin"
    if label == "Hair":
        return f"{identity.hair_style} {colour_name(identity.hair)} hair"
    if label in ("Left-arm", "Right-arm", "Left-leg", "Right-leg"):
        return f"a {label.lower().replace('-', ' ')} with {skin} skin"
    if label in ("Left-shoe", "Right-shoe"):
        return _a(f"{colour_name(identity.shoes)} {label.lower().replace('-', ' ')}")
    return ""
