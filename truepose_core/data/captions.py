"""Captions of SynthFashion people and of their parsing regions, for ``truepose train-clip``.

METHOD.md's CLIP is a frozen, contrastively pretrained image tower: its region embeddings tell
CAA what a region looks like. No CLIP weights can be downloaded here, and a tower with random
weights keeps little of a region's colour, so the SynthFashion model's tower is pretrained
CLIP-style on SynthFashion images against these captions. They name what the renderer
drew: each garment's colours and pattern, the skin, hair, shoes and background. Colours
are named, as people write them, from a fixed vocabulary (:func:`colour_name`); with
``levels`` they also carry each channel's level, "dark azure (1 3 6)", so that captions tell
apart colours that share a name.
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


def colour_words(rgb: tuple[int, int, int], levels: int = 0) -> str:
    """:func:`colour_name`, followed by the channels quantised to ``levels`` levels if > 0."""
    name = colour_name(rgb)
    if levels <= 0:
        return name
    code = " ".join(str(min(levels - 1, c * levels // 256)) for c in rgb)
    return f"{name} ({code})"


def garment_phrase(g: Garment, noun: str, levels: int = 0) -> str:
    """'a green shirt with pink dots and a black print', 'a plain red skirt'."""
    a = colour_words(g.color_a, levels)
    if g.pattern == "plain":
        phrase = f"a plain {a} {noun}"
    else:
        b = colour_words(g.color_b, levels)
        phrase = f"{_a(a)} {noun} with {b} {_PATTERN_WORDS[g.pattern]}"
    if g.text is not None:
        phrase += f" and {_a(colour_words(g.text_color, levels))} print"
    return phrase


def _person_phrases(identity: Identity, levels: int) -> dict[str, str]:
    """The phrases a person's captions are made of, by part."""

    def c(rgb: tuple[int, int, int]) -> str:
        return colour_words(rgb, levels)

    sleeves = "long-sleeved" if identity.long_sleeves else "short-sleeved"
    if identity.lower == "skirt":
        lower = garment_phrase(identity.skirt, "skirt", levels)
    else:
        lower = f"{c(identity.pants)} trousers"
    return {
        "body": f"{c(identity.skin)} skin and {identity.hair_style} {c(identity.hair)} hair",
        "shirt": garment_phrase(identity.shirt, f"{sleeves} shirt", levels),
        "lower": lower,
        "shoes": f"{c(identity.shoes)} shoes",
        "background": f"{c(identity.background)} background",
    }


def person_caption(identity: Identity, levels: int = 0) -> str:
    """The whole image: the person's clothes, skin and hair, and the background."""
    p = _person_phrases(identity, levels)
    return (
        f"a person with {p['body']} wearing {p['shirt']}, {p['lower']} and {p['shoes']} "
        f"on a {p['background']}"
    )


def person_part_captions(identity: Identity, levels: int = 0) -> list[str]:
    """The whole image, one part at a time: shirt, lower clothes, skin and hair, the rest.

    A whole image paired with each of these must keep every part in its one embedding; the
    full caption can be matched from the most telling parts alone (README, "The SynthFashion
    CLIP tower": the lower clothes were dropped).
    """
    p = _person_phrases(identity, levels)
    return [
        f"a person wearing {p['shirt']}",
        f"a person wearing {p['lower']}",
        f"a person with {p['body']}",
        f"a person in {p['shoes']} on a {p['background']}",
    ]


def region_caption(identity: Identity, label: str, levels: int = 0) -> str:
    """One parsing region of the person, by its LIP label name; '' for labels never drawn."""
    skin = colour_words(identity.skin, levels)
    if label == "Upper-clothes":
        return garment_phrase(identity.shirt, "shirt", levels)
    if label == "Skirt":
        return garment_phrase(identity.skirt, "skirt", levels)
    if label == "Pants":
        return f"{colour_words(identity.pants, levels)} trousers"
    if label == "Face":
        return f"a face with {skin} skin"
    if label == "Hair":
        return f"{identity.hair_style} {colour_words(identity.hair, levels)} hair"
    if label in ("Left-arm", "Right-arm", "Left-leg", "Right-leg"):
        return f"a {label.lower().replace('-', ' ')} with {skin} skin"
    if label in ("Left-shoe", "Right-shoe"):
        shoe = label.lower().replace("-", " ")
        return _a(f"{colour_words(identity.shoes, levels)} {shoe}")
    return ""
