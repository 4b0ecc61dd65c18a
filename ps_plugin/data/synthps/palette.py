"""Named colours (RGB uint8 triples) that identities, bystanders and background clutter share.

Names, not RGB values, are what an identity stores, so two identities "share a colour" exactly
when they store the same name.
"""
CLOTHING_COLOURS = {
    "red": (200, 30, 35),
    "maroon": (120, 22, 35),
    "orange": (235, 120, 25),
    "yellow": (235, 200, 45),
    "olive": (110, 120, 40),
    "green": (40, 140, 60),
    "teal": (20, 130, 130),
    "sky": (115, 170, 230),
    "blue": (35, 70, 190),
    "navy": (25, 32, 85),
    "purple": (110, 50, 150),
    "pink": (235, 135, 175),
    "brown": (110, 70, 40),
    "beige": (210, 190, 150),
    "grey": (128, 128, 128),
    "charcoal": (55, 55, 62),
    "black": (22, 22, 25),
    "white": (236, 236, 236),
}
PATTERN_COLOURS = ("white", "black", "yellow", "red", "navy", "grey")
SKIN_TONES = {
    "skin1": (250, 215, 185),
    "skin2": (235, 190, 150),
    "skin3": (200, 150, 110),
    "skin4": (160, 110, 75),
    "skin5": (115, 75, 50),
    "skin6": (80, 52, 36),
}
HAIR_COLOURS = {
    "black": (20, 18, 18),
    "dark_brown": (55, 35, 25),
    "brown": (100, 65, 35),
    "blonde": (215, 180, 110),
    "grey": (165, 165, 160),
    "auburn": (140, 55, 30),
}
SHOE_COLOURS = {"black": (25, 25, 25), "brown": (85, 55, 30), "white": (225, 225, 225)}

