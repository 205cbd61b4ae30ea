"""Word lists for the synthetic pair corpus, written for this project.

The artist-like names are invented; they stand for the "by <artist>" modifiers real prompts carry.
"""
from __future__ import annotations

SUBJECTS = [
    "1 girl", "1 boy", "a cat", "a dog", "an old man", "a young woman", "a knight", "a dragon",
    "a castle", "a lighthouse", "a robot", "an astronaut", "a fox", "a wolf", "an owl", "a tiger",
    "a samurai", "a witch", "a wizard", "a mermaid", "a city", "a village", "a spaceship", "a train",
    "a sailing ship", "a mountain", "a waterfall", "a forest", "a flower", "a tree", "a house",
    "a cottage", "a temple", "a bridge", "a horse", "a deer", "a bear", "a rabbit", "a butterfly",
    "a phoenix", "a unicorn", "a soldier", "a princess", "a king", "a queen", "a monk", "a pirate",
    "a cyborg", "a ghost", "a elf", "a dwarf", "a giant", "a car", "a motorcycle", "a bicycle",
    "a cup of coffee", "a bowl of fruit", "a teddy bear", "a snowman", "a tower",
]
SETTINGS = [
    "in a forest", "on a hill", "in the rain", "at night", "at sunset", "on the beach", "in space",
    "in a city street", "in a garden", "under the sea", "in the snow", "in the desert", "on a mountain",
    "in a library", "in a cafe", "on a boat", "in a field of flowers", "by a lake", "in a cave",
    "in the clouds", "on the moon", "in a ruined temple", "in a neon city", "in a kitchen",
    "on a rooftop", "in a meadow", "by the river", "in a castle hall", "in a market", "in the jungle",
]
ADJECTIVES = [
    "beautiful", "majestic", "mysterious", "cute", "ancient", "futuristic", "elegant", "epic",
    "serene", "whimsical", "dramatic", "lonely", "colorful", "ethereal", "fierce", "gentle",
]
DETAILS = [
    "intricate details", "flowing hair", "glowing eyes", "ornate armor", "detailed face",
    "soft fur", "delicate lace", "shimmering scales", "weathered stone", "glowing runes",
    "falling petals", "floating particles", "swirling mist", "reflections in water", "long shadows",
    "sparkling stars", "golden ornaments", "ivy covered walls", "crystal clear water", "billowing clouds",
]
LIGHTING = [
    "cinematic lighting", "volumetric lighting", "golden hour", "soft light", "rim light",
    "dramatic lighting", "god rays", "studio lighting", "moonlight", "neon glow", "warm light",
    "backlit", "diffused light", "candlelight", "sunbeams",
]
STYLES = [
    "digital painting", "oil painting", "concept art", "watercolor", "illustration", "matte painting",
    "anime style", "photorealistic", "3d render", "octane render", "unreal engine", "fantasy art",
    "studio photograph", "ink drawing", "pastel colors", "art nouveau", "cyberpunk", "steampunk",
    "impressionism", "low poly",
]
QUALITY = [
    "highly detailed", "masterpiece", "best quality", "sharp focus", "8k", "4k", "hdr", "ultra detailed",
    "trending on artstation", "award winning", "high resolution", "smooth", "elegant composition",
    "depth of field", "bokeh",
]
ARTISTS = [
    "by mira okafor", "by len vasquez", "by tomas hale", "by aiko brandt", "by ruben solace",
    "by ines marlow", "by kaito verne", "by delia frost", "by oskar wren", "by selma duret",
    "by juno castell", "by priya lumen", "by arlo finch", "by nadia reyes", "by felix moreau",
]
MODIFIER_GROUPS = {
    "detail": DETAILS,
    "lighting": LIGHTING,
    "style": STYLES,
    "quality": QUALITY,
    "artist": ARTISTS,
}
DEMO_RAW_PROMPTS = ["1 girl", "a cat on the beach", "a castle at night", "an astronaut in a forest"]
