"""The demo catalogue's contents: invented titles, publishers and blurbs.

Every title and publisher here is made up for the demo; none names a real game or
company. ``core.services.demo.seed_demo`` turns these into products, cover art and demo
keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Stock = Literal["normal", "low", "out"]


@dataclass(frozen=True, slots=True)
class DemoTitle:
    title: str
    platform: str
    region: str
    genre: str
    publisher: str
    price_minor: int
    blurb: str
    list_price_minor: int | None = None
    currency: str = "EUR"
    featured: bool = False
    preorder: bool = False
    stock: Stock = "normal"
    low_stock_threshold: int = 5


# fmt: off
DEMO_TITLES: Final[tuple[DemoTitle, ...]] = (
    DemoTitle("Starfall Vanguard", "Steam", "GLOBAL", "Action", "Lantern Forge", 2999,
              "Lead the last carrier wing through a collapsing star system in fast, tactical "
              "dogfights.", list_price_minor=4999, featured=True),
    DemoTitle("Starfall Vanguard", "Xbox", "GLOBAL", "Action", "Lantern Forge", 3499,
              "The carrier-wing space shooter, tuned for controllers, with split-screen "
              "co-op.", featured=True),
    DemoTitle("Hollow Tide", "GOG", "GLOBAL", "Adventure", "Brine Works", 1999,
              "A lighthouse keeper's daughter follows the tide into a drowned village that "
              "remembers her.", featured=True),
    DemoTitle("Hollow Tide", "Nintendo", "EU", "Adventure", "Brine Works", 2499,
              "The tide-bound mystery, now handheld, with a new epilogue chapter."),
    DemoTitle("Emberwake Chronicles", "Steam", "EU", "RPG", "Greyhollow Studios", 3999,
              "A sprawling party RPG where every campfire conversation can change who "
              "walks beside you.", list_price_minor=5999, featured=True),
    DemoTitle("Neon Drift Syndicate", "PlayStation", "EU", "Racing", "Red Anvil Games", 4499,
              "Street racing across a rain-slick city that never turns its lights off.",
              featured=True),
    DemoTitle("Quiet Meridian", "Nintendo", "EU", "Puzzle", "Softglow Games", 1499,
              "Bend light across a sleeping planet's surface to wake its gardens, one "
              "meridian at a time."),
    DemoTitle("Iron Orchard", "Xbox", "US", "Strategy", "Kestrel Peak Entertainment", 2999,
              "Grow a mechanical orchard into a fortress before the rust storms arrive.",
              stock="out"),
    DemoTitle("Ashen Lighthouse", "Epic Games", "GLOBAL", "Horror", "Mothwing Publishing", 1799,
              "Keep the lamp burning through seven nights on an island where the fog "
              "whispers back."),
    DemoTitle("Copperline Express", "Steam", "GLOBAL", "Simulation", "Six Kettles", 2499,
              "Build and run a mountain railway, from the first copper mine to the grand "
              "terminus.", stock="out"),
    DemoTitle("Velvet Comet Racing", "Xbox", "GLOBAL", "Racing", "Red Anvil Games", 3999,
              "Retro-futurist rally racing on comets, with a soundtrack made for long "
              "straights.", list_price_minor=5999),
    DemoTitle("Gloamreach", "Battle.net", "GLOBAL", "RPG", "Greyhollow Studios", 4999,
              "An online action RPG of twilight kingdoms, seasonal raids and endless loot.",
              stock="low"),
    DemoTitle("Brinefall Saga", "Ubisoft Connect", "EU", "Adventure", "Foxglove Interactive",
              2999, "Sail a patchwork ship between floating islands and settle old family "
              "debts."),
    DemoTitle("Paper Lantern Odyssey", "Nintendo", "GLOBAL", "Platformer", "Softglow Games",
              3999, "A folded-paper hero hops through a festival of lanterns in bright, "
              "tactile levels.", featured=True),
    DemoTitle("Frostbound Legion", "EA app", "GLOBAL", "Shooter", "Kestrel Peak Entertainment",
              5999, "Squad-based arctic warfare with destructible ice and 32-player battles.",
              list_price_minor=6999),
    DemoTitle("Clockwork Harvest", "Steam", "GLOBAL", "Simulation", "Bramble & Bolt", 1999,
              "Tend a farm of wind-up crops and gear-driven livestock in a cosy valley."),
    DemoTitle("Tin Owl Detective Agency", "GOG", "GLOBAL", "Adventure", "Tin Owl Interactive",
              1499, "Solve twelve cases as a brass owl detective with a suspicious memory."),
    DemoTitle("Skyloom Architects", "Steam", "GLOBAL", "Strategy", "Six Kettles", 2999,
              "Design cities that hang from the clouds, woven together with bridges of "
              "silk and stone.", list_price_minor=3499, featured=True),
    DemoTitle("Crimson Gambit", "PlayStation", "US", "Action", "Red Anvil Games", 4999,
              "A card-sharp thief fights her way up a casino tower one high-stakes floor at "
              "a time."),
    DemoTitle("Lunar Foundry", "Epic Games", "GLOBAL", "Simulation", "Quarry Bay Digital", 2499,
              "Automate a factory on the far side of the moon and ship alloys home before "
              "the quarter ends."),
    DemoTitle("Mirewood Rangers", "Xbox", "EU", "Action", "Foxglove Interactive", 3499,
              "Four rangers, one swamp, and a co-op hunt for the thing beneath the reeds."),
    DemoTitle("Pale Comet Protocol", "Steam", "UK", "Shooter", "Mothwing Publishing", 2199,
              "A tactical shooter about a silent space station and the crew who never left.",
              currency="GBP"),
    DemoTitle("Stormglass Regatta", "Ubisoft Connect", "GLOBAL", "Sports", "Foxglove Interactive",
              1999, "Competitive sailing with real wind physics and storm-chasing "
              "championships."),
    DemoTitle("Duskhaven Tactics", "Steam", "GLOBAL", "Strategy", "Greyhollow Studios", 2499,
              "Turn-based squad tactics in a city where the sun sets for good at the end of "
              "the campaign.", list_price_minor=2999),
    DemoTitle("Verdant Circuit", "EA app", "GLOBAL", "Racing", "Kestrel Peak Entertainment",
              3999, "Electric racing on overgrown circuits reclaimed by forests."),
    DemoTitle("Thimble Knights", "Nintendo", "US", "Platformer", "Bramble & Bolt", 2999,
              "Tiny knights, giant sewing rooms: a platformer stitched together with "
              "couch co-op.", stock="low", currency="USD"),
    DemoTitle("Basalt Parade", "Battle.net", "EU", "Strategy", "Quarry Bay Digital", 2999,
              "Real-time strategy with volcanic terrain that reshapes the map every match."),
    DemoTitle("Glasswing Sonata", "Steam", "GLOBAL", "Puzzle", "Softglow Games", 1299,
              "Compose melodies to guide glass butterflies home in a hand-painted "
              "puzzle world.", featured=True),
    DemoTitle("Harrowgate Manor", "GOG", "EU", "Horror", "Mothwing Publishing", 1999,
              "Inherit a manor, its debts and whatever scratches behind the library wall.",
              list_price_minor=2499),
    DemoTitle("Riftline Couriers", "Steam", "LATAM", "Action", "Tin Owl Interactive", 1599,
              "Deliver parcels across tearing dimensions before the rifts close behind "
              "you."),
    DemoTitle("Ninefold Crown", "PlayStation", "GLOBAL", "RPG", "Greyhollow Studios", 6999,
              "Nine heirs, one throne: an epic RPG where every choice crowns or breaks a "
              "kingdom.", preorder=True, featured=True),
    DemoTitle("Quarry Bay Football Club", "EA app", "GLOBAL", "Sports", "Quarry Bay Digital",
              4999, "Manage and play a seaside football club from the fifth tier to the "
              "continental cup.", list_price_minor=6999),
    DemoTitle("Sunken Archive", "Steam", "GLOBAL", "Adventure", "Brine Works", 1799,
              "Dive into a flooded library and restore the books that tell the city's "
              "true story.", stock="low", low_stock_threshold=10),
    DemoTitle("Kitefall Islands", "Nintendo", "EU", "Adventure", "Softglow Games", 3499,
              "Glide between islands on a hand-built kite and chart the archipelago."),
    DemoTitle("Ironbark Frontier", "Steam", "US", "Survival", "Kestrel Peak Entertainment",
              2499, "Survive a frontier of giant trees: build, hunt and weather the long "
              "winter.", currency="USD"),
    DemoTitle("Wandering Forge", "Epic Games", "GLOBAL", "RPG", "Bramble & Bolt", 2999,
              "A blacksmith's caravan crosses a continent, forging gear and friendships on "
              "the road."),
    DemoTitle("Vesper Signal", "Xbox", "GLOBAL", "Adventure", "Mothwing Publishing", 3999,
              "A radio operator picks up a broadcast from a ship lost forty years ago.",
              preorder=True),
    DemoTitle("Marrow & Moss", "GOG", "GLOBAL", "Survival", "Six Kettles", 1999,
              "A survival crafting game in a forest that grows back differently every "
              "night."),
    DemoTitle("Halcyon Breakers", "PlayStation", "EU", "Sports", "Red Anvil Games", 2999,
              "Arcade surfing on impossible waves, with tricks, crews and sunset "
              "tournaments.", list_price_minor=3999),
    DemoTitle("Lantern Keepers", "Steam", "GLOBAL", "Strategy", "Lantern Forge", 1499,
              "Tower defence by lamplight: keep the village lit while the night creeps in."),
    DemoTitle("Shardfire Arena", "Battle.net", "GLOBAL", "Shooter", "Lantern Forge", 1999,
              "A hero shooter with crystal-powered abilities and short, frantic rounds."),
    DemoTitle("Cobalt Sprinters", "Steam", "LATAM", "Racing", "Red Anvil Games", 999,
              "Pocket-sized racers on kitchen-table tracks, for up to eight players.",
              list_price_minor=1999),
    DemoTitle("Grimstone Rebellion", "Ubisoft Connect", "EU", "Strategy", "Foxglove Interactive",
              3999, "Lead a miners' uprising through a grand campaign of sieges and "
              "diplomacy."),
    DemoTitle("Tallow & Thorn", "Steam", "UK", "RPG", "Tin Owl Interactive", 1799,
              "A candle-maker's apprentice takes on a witch's curse in a small, dark "
              "fairy tale.", currency="GBP"),
    DemoTitle("Orbital Pickle Co.", "Steam", "GLOBAL", "Simulation", "Six Kettles", 1299,
              "Run the solar system's only pickle factory. Gravity is optional, brine is "
              "not."),
    DemoTitle("Silent Quarry", "Xbox", "UK", "Horror", "Mothwing Publishing", 2499,
              "Something woke up in the old quarry, and the village radio has gone quiet.",
              stock="out"),
    DemoTitle("Rookery Heights", "Nintendo", "GLOBAL", "Puzzle", "Bramble & Bolt", 1999,
              "Stack nests, balance branches and keep a whole crow colony happy."),
    DemoTitle("Fathom Engine", "Steam", "GLOBAL", "Simulation", "Quarry Bay Digital", 2299,
              "Pilot a hand-built submarine deeper than any chart, and keep the engine "
              "alive."),
    DemoTitle("Brightwater Derby", "PlayStation", "GLOBAL", "Sports", "Kestrel Peak Entertainment",
              3499, "Breed, train and race horses along the coast in a season-long derby."),
    DemoTitle("Hexbloom Garden", "Epic Games", "GLOBAL", "Puzzle", "Softglow Games", 999,
              "A calm hex-tile puzzle about planting gardens that bloom in patterns.",
              list_price_minor=1499),
    DemoTitle("Wyrmroad Caravan", "GOG", "GLOBAL", "Strategy", "Greyhollow Studios", 3499,
              "Guide a trade caravan along the back of a sleeping dragon the size of a "
              "continent.", preorder=True),
    DemoTitle("Monsoon Circuit", "Xbox", "LATAM", "Racing", "Red Anvil Games", 2999,
              "Rain-soaked endurance racing through jungle roads and coastal cities.",
              stock="out"),
    DemoTitle("Cinderveil", "Steam", "EU", "RPG", "Greyhollow Studios", 5999,
              "A soulful action RPG set in a city rebuilt, again and again, from its own "
              "ashes.", preorder=True, featured=True),
    DemoTitle("Arclight Dominion", "Battle.net", "US", "Strategy", "Quarry Bay Digital", 4999,
              "A 4X strategy game of rival lightkeepers racing to illuminate a dark galaxy.",
              preorder=True),
    DemoTitle("Pocket Lighthouse", "Nintendo", "UK", "Simulation", "Brine Works", 1499,
              "Run a tiny lighthouse and its café on a rock in the middle of the sea."),
    DemoTitle("Emberwake Chronicles", "PlayStation", "GLOBAL", "RPG", "Greyhollow Studios", 4999,
              "The campfire RPG on console, with every expansion so far included."),
)
# fmt: on


# How to redeem a key, per platform. Generic, real steps; the region line is added by the
# seeder.
ACTIVATION: Final[dict[str, str]] = {
    "Steam": (
        "Open the Steam client, choose Games → Activate a Product on Steam…, accept the "
        "subscriber agreement and enter the key. You can also redeem it in a browser at "
        "https://store.steampowered.com/account/registerkey"
    ),
    "Xbox": (
        "Sign in with your Microsoft account at https://redeem.microsoft.com and enter "
        "the code, or on the console open Store → Redeem and enter it there."
    ),
    "PlayStation": (
        "On the console open PlayStation Store, choose the … menu → Redeem Code and enter "
        "the code; or sign in to PlayStation Store in a browser, open your profile menu → "
        "Redeem Codes."
    ),
    "Nintendo": (
        "Open Nintendo eShop on the console, select your account, choose Redeem Code and "
        "enter the code. You can also redeem it at https://ec.nintendo.com/redeem"
    ),
    "EA app": (
        "Open the EA app, click the menu (☰) → Redeem code, enter the code and follow the "
        "prompts; the game then appears in your library."
    ),
    "Ubisoft Connect": (
        "Open Ubisoft Connect, click the menu (☰) → Activate a key, enter the code and "
        "confirm; the game then appears under Games."
    ),
    "GOG": (
        "Sign in at https://www.gog.com/redeem and enter the code, then download the game "
        "from your library or with GOG GALAXY."
    ),
    "Battle.net": (
        "Open the Battle.net app, click your account name → Redeem Code and enter the "
        "code, or redeem it at https://account.battle.net/ under Redeem a Code."
    ),
    "Epic Games": (
        "Open the Epic Games Launcher, click your profile → Redeem Code and enter the "
        "code, or redeem it at https://store.epicgames.com/redeem"
    ),
}

REGION_NOTES: Final[dict[str, str]] = {
    "GLOBAL": "Region: GLOBAL. The key activates worldwide.",
    "EU": "Region: EU. The key activates only in the European Union and EEA.",
    "US": "Region: US. The key activates only on United States accounts.",
    "UK": "Region: UK. The key activates only on United Kingdom accounts.",
    "LATAM": "Region: LATAM. The key activates only in Latin America.",
}
