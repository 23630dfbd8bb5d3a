"""Seeded synthetic IE corpus (all nine ADELIE tasks) and synthetic general chat: the embedded default data.

ADELIE (paper section 3.1, Table 7) trains on ~20 published IE data sets that need downloads. So that the whole
method runs on a fresh machine, this file writes small stand-ins: for every task (NER, RC, RE, ED, EAE, EE, ERE with
its four subtasks, OpenIE, ODIE) two or more synthetic "data sets" with different label sets and domains, as unified
IE records (the contract at the top of data.py and in docs/design.md), with exact character spans.

How the text is made: each data set has short sentence templates with typed slots, e.g.
`{p:PER} joined {o:ORG} in {c:CITY}.`; a slot draws a value from a type lexicon (names, cities, drugs, attack verbs,
...), and the template says what the gold is (which slot is an entity of which type, which slots stand in which
relation, which word triggers which event with which arguments). The gold is therefore learnable from the text: the
type of a mention follows from its lexicon and the words around it (`senator {x}` is a politician, `the film {x}` a
film), relations from the verb between the slots. Templates x lexicons give thousands of distinct sentences per data
set, so the model has to generalise rather than copy. About a quarter of the sentences hold nothing to extract (NA),
so data.py's NA cap (paper 3.1: "filter out 80% of NA data") has something to do.

Splits: `train` and a held-out `test`; no test text occurs in train. Everything is a function of the seed
(`random.Random` instances seeded by strings, which Python hashes with SHA-512, so runs and machines agree).

General chat (the stand-in for TULU v2 in the general-data mixing of paper section 4): arithmetic, word
manipulation and list questions with exact answers, some multi-turn, some with a system prompt, as
`{"dataset","id","messages"}`.

    python synthetic.py --out runs/synthetic            # writes train.jsonl, test.jsonl, general.jsonl
    python synthetic.py --out runs/synthetic --n_train 5000 --n_test 200
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path
from typing import Callable

# ----------------------------------------------------------------------------------------------------------------
# Lexicons: one list (or generator) per slot type. Values never contain "; ", ": ", ", " separators of the
# canonical answer formats, braces or quotes, so every gold item round-trips through the canonical parser
# (tests/test_data.py parse_canonical).

FIRST = ["Anna", "Omar", "Lena", "Ravi", "Sofia", "Marco", "Yuki", "Elena", "David", "Amara", "Jonas", "Priya", "Tom",
         "Mei", "Lucas", "Nadia", "Felix", "Ines", "Kofi", "Hana", "Pablo", "Greta", "Ivan", "Leila", "Sam", "Clara",
         "Mateo", "Aisha", "Noah", "Zara", "Erik", "Fatima", "Hugo", "Maya", "Rosa", "Tariq"]
LAST = ["Berg", "Diaz", "Novak", "Patel", "Rossi", "Tanaka", "Silva", "Okafor", "Meyer", "Kim", "Larsen", "Haddad",
        "Moreau", "Chen", "Costa", "Nowak", "Evans", "Ortiz", "Sato", "Keller", "Ahmed", "Lindqvist", "Mensah",
        "Romero", "Fischer", "Ivanova", "Quinn", "Weber"]
CITY = ["Oslo", "Lima", "Cairo", "Dublin", "Kyoto", "Porto", "Quito", "Nairobi", "Hanoi", "Zurich", "Denver", "Perth",
        "Seville", "Krakow", "Austin", "Tunis", "Bergen", "Lyon", "Manila", "Osaka", "Accra", "Bogota", "Riga",
        "Tallinn", "Malmo", "Leeds", "Geneva", "Hamburg", "Valencia", "Dakar"]
COUNTRY = ["Norway", "Peru", "Egypt", "Ireland", "Japan", "Portugal", "Ecuador", "Kenya", "Vietnam", "Switzerland",
           "Chile", "Canada", "Ghana", "Latvia", "Spain", "Senegal"]
ORG_HEAD = ["Nordic", "Blue River", "Apex", "Silver Oak", "Redwood", "Harbor", "Summit", "Golden Field", "Northwind",
            "Crystal", "Ironbridge", "Bright Lake", "Falcon", "Maple", "Orion", "Sunrise"]
ORG_TAIL = ["Bank", "Labs", "Motors", "Group", "Foods", "Media", "Airlines", "Energy", "Systems", "Pharma"]
TEAM_TAIL = ["United", "Falcons", "Rovers", "Lions", "Wanderers", "Athletic"]
RIVER = ["Danube", "Nile", "Amazon", "Rhine", "Volga", "Mekong", "Thames", "Seine", "Douro", "Elbe"]
CAR = ["Volta S3", "Rapide GT", "Corsa Neo", "Nimbus 5", "Terra XL", "Aero 9", "Vento R", "Stratos 2"]
PHONE = ["Pixa 7", "Lumo X", "Nova Fold", "Echo Mini", "Zen 12", "Orbit Pro", "Kite 4", "Flux S"]
FESTIVAL_KIND = ["Jazz Festival", "Film Week", "Book Fair", "Light Festival", "Food Festival"]
FILM = ["The Last Harbor", "Silent Rivers", "Blue Horizon", "Night Train", "Paper Moons", "The Glass Road",
        "Winter Birds", "Red Lanterns"]
BOOK = ["A House of Glass", "The Quiet Garden", "Salt and Stone", "The Long Winter", "Letters from Home",
        "The Map Maker", "Open Water", "Seven Bridges"]
DAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTH = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
         "November", "December"]
GROUP = ["rebel fighters", "armed men", "militants", "gunmen", "insurgents", "soldiers", "a gang"]
TARGET = ["police station", "convoy", "border post", "army base", "bridge", "fuel depot", "checkpoint", "airport"]
WEAPON = ["rockets", "mortars", "rifles", "drones", "grenades", "artillery"]
JOB = ["nurse", "pilot", "teacher", "chef", "lawyer", "engineer", "farmer", "dentist", "architect", "journalist"]
POSITION = ["chief executive", "sales director", "head coach", "lead designer", "finance chief", "press officer"]
PRODUCT = ["electric van", "smart watch", "cloud service", "solar panel", "video app", "coffee machine"]
DRUG = ["Valorin", "Cortexa", "Miraxol", "Denvolin", "Trelopam", "Zentrix", "Lumicor", "Pravonex", "aspirin",
        "ibuprofen", "insulin", "warfarin", "metformin", "lithium", "amoxicillin", "heparin"]
DISEASE = ["asthma", "migraine", "hypertension", "diabetes", "arthritis", "psoriasis", "epilepsy", "anemia",
           "eczema", "gout"]
EFFECT = ["nausea", "skin rash", "liver damage", "dizziness", "hair loss", "kidney failure", "insomnia", "fever",
          "seizures", "muscle pain"]
PATIENT = ["a 45-year-old man", "a young woman", "an elderly patient", "a 12-year-old boy", "a pregnant woman",
           "a 60-year-old nurse", "a teenage girl", "a retired farmer", "an adult male"]
HACKER = ["a hacker group", "cyber criminals", "an unknown attacker", "state hackers", "a ransomware gang"]
HACKER_NAME = ["Dark Lotus", "Grey Viper", "Cobalt Fox", "Night Owl", "Red Shard"]
DATA = ["customer records", "credit card numbers", "passwords", "medical files", "email addresses", "tax records"]
SOFTWARE = ["mail server", "web browser", "router firmware", "payment app", "VPN client", "database engine"]
METHOD = ["graph parser", "neural tagger", "beam search", "attention model", "rule-based system", "topic model",
          "decision tree", "kernel method", "CRF model", "transformer encoder"]
TASKN = ["question answering", "machine translation", "speech recognition", "text summarization",
         "entity linking", "image captioning", "sentiment analysis", "dependency parsing"]
DATASETN = ["the NewsQA corpus", "the WebText benchmark", "the MedDialog set", "the TinyTrees treebank",
            "the OpenWiki corpus", "the SpokenCity set"]
METRIC = ["accuracy", "recall", "BLEU score", "word error rate", "F1 score", "latency"]
COMPONENT = ["loss function", "encoder", "decoder", "feature extractor", "lexicon", "scoring module"]
CUISINE = ["thai", "italian", "mexican", "korean", "indian", "greek", "vegan", "french", "chinese", "ethiopian"]
DISH = ["pizza", "ramen", "tacos", "burgers", "pad thai", "dumplings", "pancakes", "fried chicken", "lasagna", "sushi",
        "falafel", "curry"]
LOCQ = ["downtown", "near the airport", "in midtown", "nearby", "close to the station", "on main street",
        "near the harbor", "around here"]
PARTY = ["two", "three", "four", "five", "six", "eight", "ten"]
PRICE = ["cheap", "low cost", "reasonably priced", "pricey", "fancy", "budget", "mid priced"]
RATING = ["five star", "highly rated", "best rated", "4 star", "top rated"]
HOURS = ["open late", "open now", "open on sunday", "open 24 hours", "open for breakfast", "open after midnight"]
CAUSE_N = ["spark", "storm", "virus", "gas leak", "short circuit", "heavy rain", "earthquake", "bacteria"]
EFFECT_N = ["fire", "flood", "fever", "blackout", "landslide", "panic", "infection", "power cut"]
PART_N = ["handle", "wheel", "screen", "door", "lid", "keyboard", "engine", "battery"]
WHOLE_N = ["car", "laptop", "cabinet", "bike", "kettle", "truck", "phone", "oven"]
CONTENT_N = ["letters", "coins", "apples", "documents", "tea leaves", "jewels", "cookies", "photos"]
CONTAINER_N = ["box", "jar", "drawer", "basket", "suitcase", "envelope", "tin", "bag"]
THING_N = ["cheese", "silk", "coffee", "wine", "marble", "rice", "tea", "wool"]
ORIGIN_N = ["farm", "valley", "island", "mountain village", "coast", "old mine", "monastery", "highlands"]
ARTIFACT_N = ["table", "violin", "quilt", "statue", "vase", "clock", "bridge model", "rug"]
MAKER_N = ["carpenter", "craftsman", "weaver", "sculptor", "potter", "watchmaker", "student", "artisan"]
MEMBER_N = ["singer", "player", "soldier", "monk", "dancer", "volunteer", "sailor", "student"]
COLLECTION_N = ["choir", "team", "army", "order", "troupe", "crew", "fleet", "class"]
PLACE_N = ["kitchen", "village", "harbor", "school", "factory", "old town", "garden", "museum", "warehouse", "library"]
ADJ = ["old", "small", "new", "red", "heavy", "broken", "tiny", "large", "wooden", "shiny"]
OBJECT_N = ["lamp", "chair", "book", "bottle", "mirror", "plant", "painting", "clock"]
OBJ_BUY = ["a bakery", "a small farm", "an old house", "a bookshop", "a boat", "a vineyard", "a cafe", "a studio"]
THINGS = ["apple", "planet", "garden", "river", "window", "pencil", "castle", "rocket", "summer", "ladder", "candle",
          "button", "dragon", "forest", "harbor", "jacket", "lemon", "marble", "needle", "orange", "pepper", "silver"]
FRUITS = ["apple", "pear", "plum", "cherry", "mango", "grape", "lemon", "peach", "kiwi", "melon", "fig", "banana"]

# Event trigger lexicons (past tense; the same form serves the passive where a template uses one).
ATTACK_V = ["attacked", "bombed", "raided", "shelled", "stormed", "ambushed"]
MEET_V = ["met", "visited", "hosted", "received"]
TRAVEL_V = ["traveled", "flew", "drove", "sailed", "moved"]
ELECT_V = ["elected", "chose", "re-elected"]
DIE_V = ["died", "drowned", "perished"]
PAY_V = ["paid", "donated", "transferred", "lent"]
ACQUIRE_V = ["acquired", "bought", "purchased", "took over"]
HIRE_V = ["hired", "appointed", "recruited", "named"]
LAYOFF_V = ["laid off", "cut", "dismissed", "fired"]
LAUNCH_V = ["launched", "unveiled", "released", "introduced"]
SUE_V = ["sued", "charged", "took legal action against"]
ADVERSE_V = ["developed", "suffered", "experienced", "reported"]
THERAPY_V = ["improved", "relieved", "cured", "controlled", "eased"]
BREACH_V = ["stole", "leaked", "exposed", "copied"]
PHISH_V = ["tricked", "targeted", "deceived", "lured"]
RANSOM_V = ["demanded", "asked for", "extorted"]
PATCH_V = ["patched", "fixed", "repaired"]
OPEN_V = ["opened", "bought", "sold", "built", "painted", "visited", "repaired", "rented"]

# Event nouns for ERE stories (pairs that name the same kind of event, for the coreference subtask)
EV_NOUN_PAIRS = [("explosion", "blast"), ("attack", "assault"), ("meeting", "talks"), ("strike", "walkout"),
                 ("fire", "blaze"), ("protest", "rally"), ("crash", "collision"), ("flood", "deluge")]
FESTIVE = [("festival", "parade"), ("festival", "concert"), ("wedding", "dance"), ("conference", "keynote"),
           ("tournament", "final"), ("election", "vote count"), ("war", "battle"), ("trip", "tour")]
CAUSES = [("storm", "flood"), ("quake", "collapse"), ("leak", "explosion"), ("drought", "famine"),
          ("strike", "delay"), ("outage", "shutdown"), ("crash", "traffic jam"), ("rumor", "panic")]
SEQ_VERBS = [("arrived", "unloaded"), ("landed", "refueled"), ("woke", "cooked"), ("signed", "left"),
             ("voted", "celebrated"), ("rested", "climbed"), ("studied", "passed"), ("packed", "departed")]
SIMUL_VERBS = [("sang", "danced"), ("spoke", "listened"), ("played", "cheered"), ("cooked", "talked"),
               ("drove", "slept"), ("painted", "hummed")]


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _org(rng: random.Random) -> str:
    return f"{rng.choice(ORG_HEAD)} {rng.choice(ORG_TAIL)}"


def _money(rng: random.Random) -> str:
    return f"{rng.choice([2, 3, 5, 8, 12, 15, 20, 40, 75, 120, 300])} million {rng.choice(['dollars', 'euros'])}"


def _number(rng: random.Random) -> str:
    return str(rng.choice([40, 75, 120, 200, 350, 500, 800, 1200, 3000]))


LEX: dict[str, list[str] | Callable[[random.Random], str]] = {
    "PER": _person, "ARTIST": _person, "ATHLETE": _person, "POLITICIAN": _person, "ORG": _org,
    "CITY": CITY, "COUNTRY": COUNTRY, "RIVER": RIVER, "CAR": CAR, "PHONE": PHONE, "FILM": FILM, "BOOK": BOOK,
    "TEAM": lambda rng: f"{rng.choice(CITY)} {rng.choice(TEAM_TAIL)}",
    "UNIV": lambda rng: f"University of {rng.choice(CITY)}",
    "FESTIVAL": lambda rng: f"{rng.choice(CITY)} {rng.choice(FESTIVAL_KIND)}",
    "DAY": DAY, "MONTH": MONTH, "GROUP": GROUP, "TARGET": TARGET, "WEAPON": WEAPON, "JOB": JOB,
    "POSITION": POSITION, "PRODUCT": PRODUCT, "MONEY": _money, "NUMBER": _number, "DRUG": DRUG, "DISEASE": DISEASE,
    "EFFECT": EFFECT, "PATIENT": PATIENT, "HACKER": HACKER, "HACKER_NAME": HACKER_NAME, "DATA": DATA,
    "SOFTWARE": SOFTWARE, "METHOD": METHOD, "TASKN": TASKN, "DATASETN": DATASETN, "METRIC": METRIC,
    "COMPONENT": COMPONENT, "CUISINE": CUISINE, "DISH": DISH, "LOCQ": LOCQ, "PRICE": PRICE, "PARTY": PARTY,
    "RATING": RATING,
    "HOURS": HOURS, "CAUSE_N": CAUSE_N, "EFFECT_N": EFFECT_N, "PART_N": PART_N, "WHOLE_N": WHOLE_N,
    "CONTENT_N": CONTENT_N, "CONTAINER_N": CONTAINER_N, "THING_N": THING_N, "ORIGIN_N": ORIGIN_N,
    "ARTIFACT_N": ARTIFACT_N, "MAKER_N": MAKER_N, "MEMBER_N": MEMBER_N, "COLLECTION_N": COLLECTION_N,
    "OBJECT_N": OBJECT_N, "OBJ_BUY": OBJ_BUY, "PLACE_N": PLACE_N, "ADJ": ADJ,
    "ATTACK_V": ATTACK_V, "MEET_V": MEET_V, "TRAVEL_V": TRAVEL_V, "ELECT_V": ELECT_V, "DIE_V": DIE_V,
    "PAY_V": PAY_V, "ACQUIRE_V": ACQUIRE_V, "HIRE_V": HIRE_V, "LAYOFF_V": LAYOFF_V, "LAUNCH_V": LAUNCH_V,
    "SUE_V": SUE_V, "ADVERSE_V": ADVERSE_V, "THERAPY_V": THERAPY_V, "BREACH_V": BREACH_V, "PHISH_V": PHISH_V,
    "RANSOM_V": RANSOM_V, "PATCH_V": PATCH_V, "OPEN_V": OPEN_V,
}

# Generated names (`names="generated"`): every proper name is made of random syllables, drawn from the split's own
# random stream, so held-out names are (almost) never training names. With the small lists above a model can score by
# recalling names it memorised; with generated names only copying the span from the input scores, which is the skill
# an extractor needs (and the one LLaMA-2 brings from pretraining). The word around the name still gives the type
# (a drug ends in a drug suffix, a river follows "the", a team ends in a team word).
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr", "sh",
          "ch", "h", "j", "w"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]
CODAS = ["", "", "", "n", "r", "l", "s", "m", "k", "th"]
DRUG_SUFFIX = ["ol", "ex", "ine", "amab", "ovir", "azole", "pril", "statin"]


def _word(rng: random.Random, n_min: int = 2, n_max: int = 2) -> str:
    """A pronounceable capitalised pseudo-word of n_min..n_max syllables, e.g. 'Tavoren'."""
    w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.randint(n_min, n_max)))
    return (w + rng.choice(CODAS)).capitalize()


GENERATED_LEX: dict[str, Callable[[random.Random], str]] = {
    "PER": lambda rng: f"{_word(rng)} {_word(rng)}", "ARTIST": lambda rng: f"{_word(rng)} {_word(rng)}",
    "ATHLETE": lambda rng: f"{_word(rng)} {_word(rng)}", "POLITICIAN": lambda rng: f"{_word(rng)} {_word(rng)}",
    "ORG": lambda rng: f"{_word(rng)} {rng.choice(ORG_TAIL)}", "CITY": _word,
    "COUNTRY": lambda rng: _word(rng) + rng.choice(["ia", "land", "stan"]), "RIVER": _word,
    "TEAM": lambda rng: f"{_word(rng)} {rng.choice(TEAM_TAIL)}",
    "UNIV": lambda rng: f"University of {_word(rng)}",
    "FESTIVAL": lambda rng: f"{_word(rng)} {rng.choice(FESTIVAL_KIND)}",
    "CAR": lambda rng: f"{_word(rng, 1, 2)} {rng.choice(['GT', 'S3', 'XL', '5', '9', 'R'])}",
    "PHONE": lambda rng: f"{_word(rng, 1, 2)} {rng.choice(['7', 'X', 'Pro', 'Mini', '12', 'S'])}",
    "FILM": lambda rng: f"The {_word(rng)} {rng.choice(['Road', 'Harbor', 'Birds', 'Moon', 'Train'])}",
    "BOOK": lambda rng: f"The {rng.choice(['Quiet', 'Long', 'Last', 'Open'])} {_word(rng)}",
    "DRUG": lambda rng: _word(rng, 1, 2) + rng.choice(DRUG_SUFFIX),
    "HACKER_NAME": lambda rng: f"{rng.choice(['Dark', 'Grey', 'Red', 'Night'])} {_word(rng, 1, 2)}",
}
NAMES = ("lexicon", "generated")


class NamedRandom(random.Random):
    """random.Random that also carries which name lexicons `fill` draws from."""

    def __init__(self, seed, names: str = "lexicon"):
        if names not in NAMES:
            raise ValueError(f"synthetic names={names!r}: expected one of {NAMES}")
        super().__init__(seed)
        self.names = names


# ----------------------------------------------------------------------------------------------------------------
# The template filler: `{name:TYPE}` draws a value of TYPE and binds it to `name`; `{name}` repeats a bound value.

SLOT_RE = re.compile(r"\{(\w+)(?::(\w+))?\}")


def fill(rng: random.Random, template: str, capitalize: bool = True,
         given: dict[str, str] | None = None) -> tuple[str, dict[str, dict], dict[str, str]]:
    """Fill a template; return (text, {slot name: mention}, {slot name: slot type}).

    Mentions have exact character offsets (first occurrence of the slot). Values are distinct within a sentence,
    so every gold string names one thing. `given` binds slots to fixed values (type "GIVEN")."""
    values: dict[str, str] = dict(given or {})
    types: dict[str, str] = {name: "GIVEN" for name in values}
    pieces, spans, pos, length = [], {}, 0, 0
    for m in SLOT_RE.finditer(template):
        pieces.append(template[pos:m.start()])
        length += m.start() - pos
        name, typ = m.group(1), m.group(2)
        if name not in values:
            lex = LEX[typ]
            if getattr(rng, "names", "lexicon") == "generated":
                lex = GENERATED_LEX.get(typ, lex)
            for _ in range(50):  # redraw a value already used by another slot of this sentence
                value = lex(rng) if callable(lex) else rng.choice(lex)
                if value not in values.values():
                    break
            values[name], types[name] = value, typ
        spans.setdefault(name, (length, length + len(values[name])))
        pieces.append(values[name])
        length += len(values[name])
        pos = m.end()
    pieces.append(template[pos:])
    text = "".join(pieces)
    if capitalize:  # sentence case; mentions are read back from the final text, so offsets stay exact
        text = text[0].upper() + text[1:]
    return text, {name: {"text": text[s:e], "start": s, "end": e} for name, (s, e) in spans.items()}, types


# ----------------------------------------------------------------------------------------------------------------
# Data set specifications. Each spec: task, label inventory, templates with their gold, NA templates, NA share.

NER_SETS = {
    # CoNLL-2003-like news NER: the type follows from the lexicon (names, companies, cities).
    "syn_news_ner": dict(
        labels=["Person", "Organization", "Location"],
        types={"PER": "Person", "ORG": "Organization", "CITY": "Location", "COUNTRY": "Location"},
        templates=["{p:PER} joined {o:ORG} in {c:CITY}.", "{p:PER} flew to {c:CITY} on {d:DAY}.",
                   "{o:ORG} opened a new office in {c:CITY}.", "Officials in {c:COUNTRY} praised {o:ORG}.",
                   "{p:PER} and {q:PER} met in {c:CITY}.", "{p:PER} said {o:ORG} will hire more staff.",
                   "The mayor of {c:CITY}, {p:PER}, visited {o:ORG}.", "Shares of {o:ORG} rose after {p:PER} spoke.",
                   "{o:ORG} signed a deal with {q:ORG} in {c:COUNTRY}.", "{p:PER} moved from {c:CITY} to {k:COUNTRY}.",
                   "Fans in {c:CITY} waited for {p:PER} all night.", "{p:PER} left {o:ORG} after ten years."],
        na=["The weather stayed calm all week.", "Prices rose slightly in the spring.",
            "Nobody expected the meeting to end so early.", "The talks will continue on {d:DAY}.",
            "Several shops closed early because of the heat.", "It was the warmest {m:MONTH} in years."]),
    # BC5CDR-like biomedical NER: chemicals (drug names) and diseases.
    "syn_bio_ner": dict(
        labels=["Chemical", "Disease"],
        types={"DRUG": "Chemical", "DISEASE": "Disease", "EFFECT": "Disease"},
        templates=["{x:DRUG} is used to treat {y:DISEASE}.", "Patients taking {x:DRUG} reported {e:EFFECT}.",
                   "{x:DRUG}-induced {e:EFFECT} was seen in two cases.",
                   "Low doses of {x:DRUG} reduced {y:DISEASE} symptoms.",
                   "{p:PATIENT} with {y:DISEASE} was given {x:DRUG}.",
                   "{e:EFFECT} followed treatment with {x:DRUG} and {z:DRUG}.",
                   "We studied {y:DISEASE} in mice exposed to {x:DRUG}.",
                   "{p:PATIENT} received {x:DRUG} for {y:DISEASE} on {d:DAY}.",
                   "{p:PATIENT} on {x:DRUG} had {e:EFFECT} in {m:MONTH}.",
                   "Both {x:DRUG} and {z:DRUG} can worsen {y:DISEASE}.",
                   "{p:PATIENT} with {y:DISEASE} stopped {x:DRUG} because of {e:EFFECT}."],
        na=["The study enrolled patients over two years.", "Blood samples were taken every {d:DAY}.",
            "The results were similar in both groups.", "No follow-up data were available.",
            "{p:PATIENT} was seen again on {d:DAY}.", "The clinic in {c:CITY} reopened in {m:MONTH}.",
            "{p:PATIENT} was interviewed by a nurse on {d:DAY}."]),
    # MIT-Restaurant-like queries: lower-case user queries with cuisine, dish, location, price, rating, hours.
    "syn_query_ner": dict(
        labels=["Cuisine", "Dish", "Location", "Price", "Rating", "Hours"], capitalize=False,
        types={"CUISINE": "Cuisine", "DISH": "Dish", "LOCQ": "Location", "PRICE": "Price", "RATING": "Rating",
               "HOURS": "Hours"},
        templates=["find a {p:PRICE} {c:CUISINE} restaurant {l:LOCQ}", "where can i get {d:DISH} {h:HOURS}",
                   "is there a {r:RATING} place for {d:DISH} {l:LOCQ}", "show me {c:CUISINE} places that are {h:HOURS}",
                   "i want {p:PRICE} {d:DISH} {l:LOCQ}", "any {r:RATING} {c:CUISINE} spots {h:HOURS}",
                   "best {d:DISH} {l:LOCQ} that is {p:PRICE}", "{c:CUISINE} food {l:LOCQ} please",
                   "i am looking for {r:RATING} {c:CUISINE} food {h:HOURS}", "{d:DISH} {l:LOCQ} {h:HOURS}",
                   "can you find {p:PRICE} {d:DISH} {l:LOCQ} for {n:PARTY} people",
                   "which {c:CUISINE} place {l:LOCQ} serves {d:DISH}", "a {p:PRICE} {r:RATING} restaurant {h:HOURS}",
                   "take me to a {c:CUISINE} restaurant that is {h:HOURS} and {p:PRICE}"],
        na=["book a table for {n:PARTY}", "how do i get there", "what is the phone number", "thank you very much",
            "can i bring my dog", "reserve seats for {n:PARTY} people", "is parking free for {n:PARTY} cars",
            "cancel my booking for {n:PARTY}"]),
    # Few-NERD-like fine-grained NER: 14 hierarchical types, decided by the words around the mention.
    "syn_fine_ner": dict(
        labels=["person-artist", "person-athlete", "person-politician", "location-city", "location-country",
                "location-river", "organization-company", "organization-sportsteam", "organization-university",
                "product-car", "product-phone", "event-festival", "art-film", "art-book"],
        types={"ARTIST": "person-artist", "ATHLETE": "person-athlete", "POLITICIAN": "person-politician",
               "CITY": "location-city", "COUNTRY": "location-country", "RIVER": "location-river",
               "ORG": "organization-company", "TEAM": "organization-sportsteam", "UNIV": "organization-university",
               "CAR": "product-car", "PHONE": "product-phone", "FESTIVAL": "event-festival", "FILM": "art-film",
               "BOOK": "art-book"},
        templates=["The painter {a:ARTIST} showed new work in {c:CITY}.", "Striker {a:ATHLETE} signed for {t:TEAM}.",
                   "Senator {a:POLITICIAN} visited {k:COUNTRY} last week.",
                   "The film {f:FILM} opened the {e:FESTIVAL}.", "{a:ARTIST} wrote the novel {b:BOOK} in {c:CITY}.",
                   "{o:ORG} unveiled the {v:CAR} in {c:CITY}.", "The new {v:PHONE} from {o:ORG} sold out quickly.",
                   "{a:POLITICIAN} studied at the {u:UNIV}.",
                   "A bridge over the {r:RIVER} links {c:CITY} and {d:CITY}.",
                   "{t:TEAM} beat {s:TEAM} with a late goal by {a:ATHLETE}.",
                   "The singer {a:ARTIST} will perform at the {e:FESTIVAL}.",
                   "Critics loved the film {f:FILM} but not the book {b:BOOK}.",
                   "Minister {a:POLITICIAN} opened a factory of {o:ORG} in {k:COUNTRY}.",
                   "Boats sail down the {r:RIVER} every summer."],
        na=["The crowd cheered for a long time.", "Tickets sold out within an hour.",
            "The ceremony ended with a short speech.", "Most shops were closed on {d:DAY}."]),
}

RE_SETS = {
    # NYT-like news relations between people, organisations and places.
    "syn_news_re": dict(
        labels=["works_for", "lives_in", "born_in", "located_in", "founded_by"],
        templates=[("{p:PER} works for {o:ORG}.", [("p", "works_for", "o")]),
                   ("{p:PER}, an engineer at {o:ORG}, lives in {c:CITY}.",
                    [("p", "works_for", "o"), ("p", "lives_in", "c")]),
                   ("{o:ORG}, based in {c:CITY}, was founded by {p:PER}.",
                    [("o", "located_in", "c"), ("o", "founded_by", "p")]),
                   ("{p:PER} was born in {c:CITY}.", [("p", "born_in", "c")]),
                   ("Born in {c:CITY}, {p:PER} now lives in {d:CITY}.",
                    [("p", "born_in", "c"), ("p", "lives_in", "d")]),
                   ("{p:PER} founded {o:ORG} in {m:MONTH}.", [("o", "founded_by", "p")]),
                   ("{o:ORG} has its headquarters in {c:CITY}.", [("o", "located_in", "c")]),
                   ("{p:PER} left {o:ORG} and joined {q:ORG}.", [("p", "works_for", "q")])],
        na=["{p:PER} visited {c:CITY} last week.", "{p:PER} criticised {o:ORG} on {d:DAY}.",
            "{o:ORG} and {q:ORG} held talks in {c:CITY}.", "{p:PER} met {q:PER} at a dinner."]),
    # ADE-like: drugs and their adverse effects; drugs that treat a disease.
    "syn_bio_re": dict(
        labels=["Adverse-Effect", "Treats"],
        templates=[("{x:DRUG}-induced {e:EFFECT} was observed.", [("x", "Adverse-Effect", "e")]),
                   ("Patients given {x:DRUG} developed {e:EFFECT}.", [("x", "Adverse-Effect", "e")]),
                   ("{x:DRUG} relieved {y:DISEASE} in most patients.", [("x", "Treats", "y")]),
                   ("{x:DRUG} controls {y:DISEASE} but may cause {e:EFFECT}.",
                    [("x", "Treats", "y"), ("x", "Adverse-Effect", "e")]),
                   ("We report {e:EFFECT} after a high dose of {x:DRUG}.", [("x", "Adverse-Effect", "e")]),
                   ("{y:DISEASE} improved quickly with {x:DRUG}.", [("x", "Treats", "y")]),
                   ("{p:PATIENT} developed {e:EFFECT} on {d:DAY} after starting {x:DRUG}.",
                    [("x", "Adverse-Effect", "e")]),
                   ("{p:PATIENT} with {y:DISEASE} was treated with {x:DRUG} in {m:MONTH}.", [("x", "Treats", "y")]),
                   ("In {p:PATIENT}, {x:DRUG} caused {e:EFFECT} and {f:EFFECT}.",
                    [("x", "Adverse-Effect", "e"), ("x", "Adverse-Effect", "f")])],
        na=["{x:DRUG} was stored at room temperature.", "{p:PATIENT} was admitted with {y:DISEASE}.",
            "The dose of {x:DRUG} was checked twice.", "{p:PATIENT} asked about {x:DRUG} on {d:DAY}.",
            "{p:PATIENT} had a history of {y:DISEASE} and {e:EFFECT}."]),
    # SciERC-like relations between methods, tasks, data sets and metrics.
    "syn_sci_re": dict(
        labels=["USED-FOR", "PART-OF", "EVALUATE-FOR", "COMPARE", "FEATURE-OF"],
        templates=[("We apply a {m:METHOD} to {t:TASKN}.", [("m", "USED-FOR", "t")]),
                   ("The {m:METHOD} is evaluated on {d:DATASETN}.", [("d", "EVALUATE-FOR", "m")]),
                   ("Our {m:METHOD} outperforms a {n:METHOD} on {t:TASKN}.",
                    [("m", "COMPARE", "n"), ("m", "USED-FOR", "t")]),
                   ("The {c:COMPONENT} is part of the {m:METHOD}.", [("c", "PART-OF", "m")]),
                   ("{k:METRIC} of the {m:METHOD} improves with more data.", [("k", "FEATURE-OF", "m")]),
                   ("A {m:METHOD} with a new {c:COMPONENT} is used for {t:TASKN}.",
                    [("c", "PART-OF", "m"), ("m", "USED-FOR", "t")]),
                   ("We measure the {k:METRIC} of a {m:METHOD} on {d:DATASETN}.",
                    [("k", "FEATURE-OF", "m"), ("d", "EVALUATE-FOR", "m")]),
                   ("For {t:TASKN}, the {m:METHOD} beats the {n:METHOD}.",
                    [("m", "USED-FOR", "t"), ("m", "COMPARE", "n")]),
                   ("The {c:COMPONENT} of our {m:METHOD} helps {t:TASKN} in {l:CITY}.",
                    [("c", "PART-OF", "m"), ("m", "USED-FOR", "t")])],
        na=["This paper is organised as follows.", "Section three describes the experiments.",
            "We thank the reviewers for their comments.", "The code was released in {m:MONTH}.",
            "The workshop in {l:CITY} discussed {t:TASKN}.", "A {m:METHOD} is hard to explain to students."]),
}

RC_SETS = {
    # TACRED-like: given a subject and an object, the relation or none (the reversed pair usually has none).
    "syn_kb_rc": dict(
        labels=["per:employee_of", "per:city_of_birth", "per:spouse", "org:founded_by", "org:city_of_headquarters"],
        templates=[("{p:PER}, who was born in {c:CITY}, now works for {o:ORG}.",
                    [("p", "c", "per:city_of_birth"), ("p", "o", "per:employee_of"), ("o", "c", None),
                     ("c", "p", None)]),
                   ("{p:PER} married {q:PER} in {c:CITY}.", [("p", "q", "per:spouse"), ("p", "c", None)]),
                   ("{o:ORG} was founded by {p:PER} and is based in {c:CITY}.",
                    [("o", "p", "org:founded_by"), ("o", "c", "org:city_of_headquarters"), ("p", "c", None)]),
                   ("{p:PER} joined {o:ORG} as an analyst.", [("p", "o", "per:employee_of"), ("o", "p", None)]),
                   ("{p:PER} and her husband {q:PER} visited {c:CITY}.", [("p", "q", "per:spouse"), ("q", "c", None)]),
                   ("{p:PER} criticised {o:ORG} in a speech in {c:CITY}.", [("p", "o", None), ("o", "c", None)])],
        na=[]),
    # SemEval-2010-Task-8-like: directed semantic relations between two nominals.
    "syn_semantic_rc": dict(
        labels=["Cause-Effect", "Effect-Cause", "Component-Whole", "Whole-Component", "Content-Container",
                "Container-Content", "Entity-Origin", "Origin-Entity", "Product-Producer", "Producer-Product",
                "Member-Collection", "Collection-Member"],
        templates=[("The {e:EFFECT_N} in the {pl:PLACE_N} was caused by the {c:CAUSE_N}.",
                    [("c", "e", "Cause-Effect"), ("e", "c", "Effect-Cause")]),
                   ("On {d:DAY}, a {c:CAUSE_N} triggered the {e:EFFECT_N}.",
                    [("c", "e", "Cause-Effect"), ("e", "c", "Effect-Cause")]),
                   ("The {e:EFFECT_N} near the {pl:PLACE_N} came from a {c:CAUSE_N}.",
                    [("c", "e", "Cause-Effect"), ("e", "c", "Effect-Cause")]),
                   ("The {p:PART_N} of the {a:ADJ} {w:WHOLE_N} was broken.",
                    [("p", "w", "Component-Whole"), ("w", "p", "Whole-Component")]),
                   ("The {w:WHOLE_N} in the {pl:PLACE_N} has a {a:ADJ} {p:PART_N}.",
                    [("p", "w", "Component-Whole"), ("w", "p", "Whole-Component")]),
                   ("The {c:CONTENT_N} were kept in a {a:ADJ} {k:CONTAINER_N}.",
                    [("c", "k", "Content-Container"), ("k", "c", "Container-Content")]),
                   ("A {k:CONTAINER_N} full of {c:CONTENT_N} stood in the {pl:PLACE_N}.",
                    [("c", "k", "Content-Container"), ("k", "c", "Container-Content")]),
                   ("The {t:THING_N} in the {pl:PLACE_N} came from a {o:ORIGIN_N}.",
                    [("t", "o", "Entity-Origin"), ("o", "t", "Origin-Entity")]),
                   ("This {t:THING_N} is imported from a distant {o:ORIGIN_N}.",
                    [("t", "o", "Entity-Origin"), ("o", "t", "Origin-Entity")]),
                   ("The {a:ADJ} {x:ARTIFACT_N} was made by a {m:MAKER_N}.",
                    [("x", "m", "Product-Producer"), ("m", "x", "Producer-Product")]),
                   ("A {m:MAKER_N} from the {pl:PLACE_N} built the {x:ARTIFACT_N}.",
                    [("x", "m", "Product-Producer"), ("m", "x", "Producer-Product")]),
                   ("A {m:MEMBER_N} of the {c:COLLECTION_N} sang on {d:DAY}.",
                    [("m", "c", "Member-Collection"), ("c", "m", "Collection-Member")]),
                   ("The {c:COLLECTION_N} welcomed a new {m:MEMBER_N} in the {pl:PLACE_N}.",
                    [("m", "c", "Member-Collection"), ("c", "m", "Collection-Member")]),
                   ("The {a:ADJ} {x:OBJECT_N} stood next to the {y:OBJECT_N}.", [("x", "y", None), ("y", "x", None)]),
                   ("She moved the {x:OBJECT_N} away from the {y:OBJECT_N} on {d:DAY}.",
                    [("x", "y", None), ("y", "x", None)]),
                   ("The {x:OBJECT_N} in the {pl:PLACE_N} looked like a {y:OBJECT_N}.",
                    [("x", "y", None), ("y", "x", None)])],
        na=[]),
}

# Event clauses: (clause, [(trigger slot, event type, [(argument slot, role), ...])]). Sentences join one or two.
NEWS_EVENTS = {
    "Conflict.Attack": ["Attacker", "Target", "Instrument", "Place"],
    "Contact.Meet": ["Entity", "Place", "Time"],
    "Movement.Transport": ["Agent", "Origin", "Destination"],
    "Personnel.Elect": ["Person", "Place"],
    "Life.Die": ["Victim", "Place", "Time"],
    "Transaction.Transfer-Money": ["Giver", "Recipient", "Money"],
}
NEWS_CLAUSES = [
    ("{a:GROUP} {t:ATTACK_V} the {b:TARGET} in {p:CITY}",
     [("t", "Conflict.Attack", [("a", "Attacker"), ("b", "Target"), ("p", "Place")])]),
    ("{a:GROUP} {t:ATTACK_V} the {b:TARGET} with {i:WEAPON}",
     [("t", "Conflict.Attack", [("a", "Attacker"), ("b", "Target"), ("i", "Instrument")])]),
    ("{x:PER} {t:MEET_V} {y:PER} in {p:CITY} on {d:DAY}",
     [("t", "Contact.Meet", [("x", "Entity"), ("y", "Entity"), ("p", "Place"), ("d", "Time")])]),
    ("{x:PER} {t:TRAVEL_V} from {o:CITY} to {d:CITY}",
     [("t", "Movement.Transport", [("x", "Agent"), ("o", "Origin"), ("d", "Destination")])]),
    ("voters in {p:CITY} {t:ELECT_V} {x:PER} as mayor", [("t", "Personnel.Elect", [("x", "Person"), ("p", "Place")])]),
    ("{v:PER} {t:DIE_V} in {p:CITY} on {d:DAY}", [("t", "Life.Die", [("v", "Victim"), ("p", "Place"), ("d", "Time")])]),
    ("{g:ORG} {t:PAY_V} {m:MONEY} to {r:ORG}",
     [("t", "Transaction.Transfer-Money", [("g", "Giver"), ("r", "Recipient"), ("m", "Money")])]),
]
NEWS_NA = ["{x:PER} is a teacher in {p:CITY}", "the city of {p:CITY} is known for its parks",
           "{x:PER} likes long walks", "the report will be published on {d:DAY}"]

BIZ_EVENTS = {
    "Acquisition": ["Buyer", "Acquired", "Price"],
    "Hiring": ["Employer", "Employee", "Position"],
    "Layoff": ["Employer", "Number"],
    "Product_Launch": ["Company", "Product"],
    "Lawsuit": ["Plaintiff", "Defendant"],
}
BIZ_CLAUSES = [
    ("{b:ORG} {t:ACQUIRE_V} {a:ORG} for {m:MONEY}",
     [("t", "Acquisition", [("b", "Buyer"), ("a", "Acquired"), ("m", "Price")])]),
    ("{b:ORG} {t:ACQUIRE_V} its rival {a:ORG}", [("t", "Acquisition", [("b", "Buyer"), ("a", "Acquired")])]),
    ("{o:ORG} {t:HIRE_V} {p:PER} as {j:POSITION}",
     [("t", "Hiring", [("o", "Employer"), ("p", "Employee"), ("j", "Position")])]),
    ("{o:ORG} {t:LAYOFF_V} {n:NUMBER} workers", [("t", "Layoff", [("o", "Employer"), ("n", "Number")])]),
    ("{o:ORG} {t:LAUNCH_V} a new {x:PRODUCT}", [("t", "Product_Launch", [("o", "Company"), ("x", "Product")])]),
    ("{o:ORG} {t:SUE_V} {q:ORG}", [("t", "Lawsuit", [("o", "Plaintiff"), ("q", "Defendant")])]),
]
BIZ_NA = ["{o:ORG} reported steady sales", "the market was quiet on {d:DAY}", "analysts expect little change",
          "{p:PER} spoke at a conference in {c:CITY}"]

PHARMA_EVENTS = {"Adverse_event": ["Subject", "Treatment", "Effect"],
                 "Potential_therapeutic_event": ["Subject", "Treatment", "Disorder"]}
PHARMA_CLAUSES = [
    ("{s:PATIENT} {t:ADVERSE_V} {e:EFFECT} after taking {x:DRUG}",
     [("t", "Adverse_event", [("s", "Subject"), ("e", "Effect"), ("x", "Treatment")])]),
    ("{x:DRUG} {t:THERAPY_V} {y:DISEASE} in {s:PATIENT}",
     [("t", "Potential_therapeutic_event", [("x", "Treatment"), ("y", "Disorder"), ("s", "Subject")])]),
    ("{s:PATIENT} on {x:DRUG} {t:ADVERSE_V} severe {e:EFFECT}",
     [("t", "Adverse_event", [("s", "Subject"), ("x", "Treatment"), ("e", "Effect")])]),
    ("{x:DRUG} {t:THERAPY_V} {y:DISEASE}",
     [("t", "Potential_therapeutic_event", [("x", "Treatment"), ("y", "Disorder")])]),
]
PHARMA_NA = ["{s:PATIENT} was discharged on {d:DAY}", "{x:DRUG} is sold in two strengths",
             "the trial ran for six months"]

CYBER_EVENTS = {"Databreach": ["Attacker", "Victim", "Compromised-Data"], "Phishing": ["Attacker", "Victim"],
                "Ransom": ["Attacker", "Victim", "Price"], "Patch-Vulnerability": ["Releaser", "Vulnerable-System"]}
CYBER_CLAUSES = [
    ("{a:HACKER} {t:BREACH_V} {k:DATA} from {v:ORG}",
     [("t", "Databreach", [("a", "Attacker"), ("k", "Compromised-Data"), ("v", "Victim")])]),
    ("the {n:HACKER_NAME} group {t:PHISH_V} staff at {v:ORG}",
     [("t", "Phishing", [("n", "Attacker"), ("v", "Victim")])]),
    ("{a:HACKER} {t:RANSOM_V} {m:MONEY} from {v:ORG}",
     [("t", "Ransom", [("a", "Attacker"), ("m", "Price"), ("v", "Victim")])]),
    ("{o:ORG} {t:PATCH_V} a flaw in its {s:SOFTWARE}",
     [("t", "Patch-Vulnerability", [("o", "Releaser"), ("s", "Vulnerable-System")])]),
]
CYBER_NA = ["{o:ORG} hired a new security chief", "the conference on {d:DAY} discussed privacy",
            "{o:ORG} updated its logo"]

EVENT_SETS = {  # name: (task, event types -> roles, clauses, NA clauses)
    "syn_news_ed": ("ED", NEWS_EVENTS, NEWS_CLAUSES, NEWS_NA),
    "syn_biz_ed": ("ED", BIZ_EVENTS, BIZ_CLAUSES, BIZ_NA),
    "syn_news_eae": ("EAE", NEWS_EVENTS, NEWS_CLAUSES, NEWS_NA),
    "syn_biz_eae": ("EAE", BIZ_EVENTS, BIZ_CLAUSES, BIZ_NA),
    "syn_pharma_ee": ("EE", PHARMA_EVENTS, PHARMA_CLAUSES, PHARMA_NA),
    "syn_cyber_ee": ("EE", CYBER_EVENTS, CYBER_CLAUSES, CYBER_NA),
}
CONNECTORS = [", and later ", "; meanwhile, ", ", after which ", ", while "]

OPENIE_SETS = {
    # (template, [(predicate, subject, object, time, location)]) with each element a format string over slots.
    "syn_openie_news": [
        ("{s:PER} {p:OPEN_V} {o:OBJ_BUY} in {l:CITY} on {t:DAY}.", [("{p}", "{s}", "{o}", "on {t}", "in {l}")]),
        ("On {t:DAY}, {s:PER} {p:OPEN_V} {o:OBJ_BUY}.", [("{p}", "{s}", "{o}", "On {t}", "")]),
        ("{s:PER} {p:OPEN_V} {o:OBJ_BUY} and {r:PER} {q:OPEN_V} {u:OBJ_BUY}.",
         [("{p}", "{s}", "{o}", "", ""), ("{q}", "{r}", "{u}", "", "")]),
        ("{s:PER} moved to {l:CITY} in {t:MONTH}.", [("moved to", "{s}", "{l}", "in {t}", "")]),
        ("{s:PER} works as a {o:JOB} in {l:CITY}.", [("works as", "{s}", "a {o}", "", "in {l}")]),
        ("{s:ORG} hired {o:PER} on {t:DAY}.", [("hired", "{s}", "{o}", "on {t}", "")]),
        ("In {t:MONTH}, {s:ORG} {p:LAUNCH_V} a {o:PRODUCT} in {l:COUNTRY}.",
         [("{p}", "{s}", "a {o}", "In {t}", "in {l}")]),
        ("{s:PER} slept.", [("slept", "{s}", "", "", "")])],
    "syn_openie_sci": [
        ("The {s:METHOD} improves {o:METRIC} on {d:DATASETN}.", [("improves", "The {s}", "{o} on {d}", "", "")]),
        ("Researchers in {l:CITY} proposed a {o:METHOD} in {t:MONTH}.",
         [("proposed", "Researchers in {l}", "a {o}", "in {t}", "")]),
        ("A {s:METHOD} improves {o:METRIC} and speeds up {k:TASKN}.",
         [("improves", "A {s}", "{o}", "", ""), ("speeds up", "A {s}", "{k}", "", "")]),
        ("The {s:COMPONENT} uses a {o:METHOD}.", [("uses", "The {s}", "a {o}", "", "")]),
        ("We tested the {s:METHOD} on {d:DATASETN} in {l:CITY}.", [("tested", "We", "the {s} on {d}", "", "in {l}")])],
}
OPENIE_NA = ["Thanks a lot.", "Good morning, everyone.", "What a lovely day!", "See you soon."]

ERE_LABELS = {"temporal": ["BEFORE", "SIMULTANEOUS", "CONTAINS"], "causal": ["CAUSE", "PRECONDITION"],
              "subevent": ["SUBEVENT"], "coreference": ["COREFERENCE"]}
MATRES_LABELS = ["BEFORE", "AFTER", "EQUAL", "VAGUE"]
PRECOND = [("vote", "celebration"), ("inspection", "launch"), ("permit", "construction"), ("audit", "merger"),
           ("rehearsal", "premiere"), ("check-in", "boarding")]

ODIE_SETS = ("syn_odie_people", "syn_odie_products")

# Every synthetic data set and its task (iteration order = file order; data.py sorts anyway).
DATASETS: dict[str, str] = {**{n: "NER" for n in NER_SETS}, **{n: "RC" for n in RC_SETS},
                            **{n: "RE" for n in RE_SETS}, **{n: spec[0] for n, spec in EVENT_SETS.items()},
                            "syn_story_ere": "ERE", "syn_pair_ere": "ERE",
                            **{n: "OpenIE" for n in OPENIE_SETS}, **{n: "ODIE" for n in ODIE_SETS}}

NA_SHARE = 0.25  # share of sentences drawn from NA templates (before data.py's NA cap)


# ----------------------------------------------------------------------------------------------------------------
# One example per task: each returns (text, query, items, labels, meta) in the unified record's terms.

def _rel(mentions: dict, h: str, label: str, t: str) -> dict:
    return {"head": mentions[h], "relation": label, "tail": mentions[t]}


def _by_start(items: list[dict], key: str) -> list[dict]:
    return sorted(items, key=lambda it: (it[key]["start"], it[key]["end"]))


def ner_example(name: str, rng: random.Random):
    spec = NER_SETS[name]
    na = rng.random() < NA_SHARE
    text, m, types = fill(rng, rng.choice(spec["na"] if na else spec["templates"]), spec.get("capitalize", True))
    items = [{"entity": m[n], "type": spec["types"][types[n]]} for n in m if types[n] in spec["types"]]
    return text, None, _by_start(items, "entity"), spec["labels"], {}


def re_example(name: str, rng: random.Random):
    spec = RE_SETS[name]
    if rng.random() < NA_SHARE:
        template, rels = rng.choice(spec["na"]), []
    else:
        template, rels = rng.choice(spec["templates"])
    text, m, _ = fill(rng, template)
    items = [_rel(m, h, r, t) for h, r, t in rels]
    return text, None, _by_start(items, "head"), spec["labels"], {}


def rc_example(name: str, rng: random.Random):
    spec = RC_SETS[name]
    template, pairs = rng.choice(spec["templates"])
    text, m, _ = fill(rng, template)
    h, t, label = rng.choice(pairs)  # the queried pair; label None = no relation (items == [])
    items = [] if label is None else [_rel(m, h, label, t)]
    return text, {"head": m[h], "tail": m[t]}, items, spec["labels"], {}


def _event_sentence(rng: random.Random, clauses, na_clauses, allow_na: bool):
    """One clause, or two joined by a connector; returns (text, mentions, events)."""
    def pick():
        if allow_na and rng.random() < NA_SHARE:
            return rng.choice(na_clauses), []
        return rng.choice(clauses)
    template, events = pick()
    if rng.random() < 0.3:  # a second clause, its slot names prefixed so they do not collide with the first's
        template2, events2 = pick()
        template2 = re.sub(r"\{(\w+)", r"{b_\1", template2)
        events2 = [("b_" + t, typ, [("b_" + a, role) for a, role in args]) for t, typ, args in events2]
        template, events = template + rng.choice(CONNECTORS) + template2, events + events2
    text, m, _ = fill(rng, template + ".")
    return text, m, events


def event_example(name: str, rng: random.Random):
    task, inventory, clauses, na_clauses = EVENT_SETS[name]
    text, m, events = _event_sentence(rng, clauses, na_clauses, allow_na=(task != "EAE"))
    types = list(inventory)
    if task == "ED":
        items = [{"trigger": m[t], "type": typ} for t, typ, _ in events]
        return text, None, _by_start(items, "trigger"), types, {}
    if task == "EE":
        items = [{"trigger": m[t], "type": typ,
                  "arguments": [{"argument": m[a], "role": role} for a, role in args]} for t, typ, args in events]
        return text, None, _by_start(items, "trigger"), types, {"roles": {k: list(v) for k, v in inventory.items()}}
    # EAE: one trigger is the query; its roles are the schema
    t, typ, args = rng.choice(events)
    items = _by_start([{"argument": m[a], "role": role} for a, role in args], "argument")
    return text, {"trigger": m[t], "event_type": typ}, items, list(inventory[typ]), {}


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def ere_story_example(name: str, rng: random.Random):
    """MAVEN-ERE-like: a short story, its event mentions as the query, relations of one subtask as the gold."""
    subtask = rng.choice(sorted(ERE_LABELS))
    kind = rng.randrange(4)
    rels: list[tuple[str, str, str]]
    if subtask == "temporal":
        if kind == 0:
            v1, v2 = rng.choice(SEQ_VERBS)
            g, tpl = {"e1": v1, "e2": v2}, "{p:PER} {e1} in the morning. Then {q:PER} {e2}."
            rels = [("e1", "BEFORE", "e2")]
        elif kind == 1:
            v1, v2 = rng.choice(SEQ_VERBS)
            g, tpl, rels = {"e1": v1, "e2": v2}, "Before {q:PER} {e2}, {p:PER} {e1}.", [("e1", "BEFORE", "e2")]
        elif kind == 2:
            v1, v2 = rng.choice(SIMUL_VERBS)
            g, tpl, rels = {"e1": v1, "e2": v2}, "While {p:PER} {e1}, {q:PER} {e2}.", [("e1", "SIMULTANEOUS", "e2")]
        else:
            n1, n2 = rng.choice(FESTIVE)
            g, tpl = {"e1": n1, "e2": n2}, "During the {e1} in {c:CITY}, " + _a(n2).split()[0] + " {e2} took place."
            rels = [("e1", "CONTAINS", "e2")]
    elif subtask == "causal":
        if kind in (0, 1):
            c, e = rng.choice(CAUSES)
            g = {"e1": c, "e2": e}
            tpl = ("The {e1} caused " + _a(e).split()[0] + " {e2} in {c:CITY}." if kind == 0
                   else "The {e2} in {c:CITY} was the result of " + _a(c).split()[0] + " {e1}.")
            rels = [("e1", "CAUSE", "e2")]
        elif kind == 2:
            p, q = rng.choice(PRECOND)
            g, tpl = {"e1": p, "e2": q}, "Once the {e1} was over, the {e2} could begin."
            rels = [("e1", "PRECONDITION", "e2")]
        else:
            i, j = rng.sample(range(len(CAUSES)), 2)
            c, e = CAUSES[i][0], CAUSES[j][1]
            g = {"e1": c, "e2": e}
            tpl = _a(c).split()[0].capitalize() + " {e1} was reported in {c:CITY}. " + _a(e).split()[0].capitalize() \
                + " {e2} happened on {d:DAY}."
            rels = []
    elif subtask == "subevent":
        if kind in (0, 1):
            n1, n2 = rng.choice(FESTIVE)
            g = {"e1": n1, "e2": n2}
            tpl = ("During the {e1} in {c:CITY}, " + _a(n2).split()[0] + " {e2} took place." if kind == 0
                   else "The {e1} included a long {e2}.")
            rels = [("e1", "SUBEVENT", "e2")]
        else:
            i, j = rng.sample(range(len(FESTIVE)), 2)
            n1, n2 = FESTIVE[i][0], FESTIVE[j][1]
            if n1 == FESTIVE[j][0]:  # same parent kind: still a plausible subevent, so draw an unrelated pair
                n2 = "storm"
            g = {"e1": n1, "e2": n2}
            tpl = "The {e1} ended on {d:DAY}. " + _a(n2).split()[0].capitalize() + " {e2} hit {c:CITY} a year later."
            rels = []
    else:  # coreference
        if kind in (0, 1):
            n1, n2 = rng.choice(EV_NOUN_PAIRS)
            g = {"e1": n1, "e2": n2}
            tpl = (_a(n1).split()[0].capitalize() + " {e1} hit {c:CITY} on {d:DAY}. The {e2} damaged ten homes."
                   if kind == 0 else "The {e1} lasted two hours, and witnesses said the {e2} was loud.")
            rels = [("e1", "COREFERENCE", "e2")]
        else:
            i, j = rng.sample(range(len(EV_NOUN_PAIRS)), 2)
            n1, n2 = EV_NOUN_PAIRS[i][0], EV_NOUN_PAIRS[j][1]
            g = {"e1": n1, "e2": n2}
            tpl = (_a(n1).split()[0].capitalize() + " {e1} took place in {c:CITY}. " + _a(n2).split()[0].capitalize()
                   + " {e2} was reported in {k:CITY} a week later.")
            rels = []
    text, m, _ = fill(rng, tpl, given=g)
    events = sorted((m["e1"], m["e2"]), key=lambda x: x["start"])
    items = [{"event1": m[a], "relation": r, "event2": m[b]} for a, r, b in rels]
    return text, {"events": events}, items, ERE_LABELS[subtask], {"subtask": subtask}


def ere_pair_example(name: str, rng: random.Random):
    """MATRES-like: two marked events, one temporal label (BEFORE/AFTER/EQUAL/VAGUE); never NA in the source."""
    kind = rng.randrange(5)
    if kind < 3:
        v1, v2 = rng.choice(SEQ_VERBS)
        tpl = ["{p:PER} {e1} before {q:PER} {e2}.", "After {p:PER} {e1}, {q:PER} {e2}.",
               "{q:PER} {e2} after {p:PER} {e1}."][kind]
        label = "BEFORE"
    elif kind == 3:
        v1, v2 = rng.choice(SIMUL_VERBS)
        tpl, label = "As {p:PER} {e1}, {q:PER} {e2}.", "EQUAL"
    else:
        v1, v2 = rng.choice(SEQ_VERBS + SIMUL_VERBS)
        tpl, label = "{p:PER} {e1} on {d:DAY}, and {q:PER} {e2} at some point.", "VAGUE"
    text, m, _ = fill(rng, tpl, given={"e1": v1, "e2": v2})
    e1, e2 = m["e1"], m["e2"]
    if rng.random() < 0.5:  # ask about the pair in the other order: the label flips
        e1, e2, label = e2, e1, {"BEFORE": "AFTER"}.get(label, label)
    items = [{"event1": e1, "relation": label, "event2": e2}]
    return text, {"event1": e1, "event2": e2}, items, MATRES_LABELS, {"subtask": "temporal"}


def openie_example(name: str, rng: random.Random):
    if rng.random() < NA_SHARE / 2:
        return rng.choice(OPENIE_NA), None, [], [], {}
    template, tuples = rng.choice(OPENIE_SETS[name])
    text, m, _ = fill(rng, template)
    values = {k: v["text"] for k, v in m.items()}
    keys = ("predicate", "subject", "object", "time", "location")
    items = [{k: part.format(**values) for k, part in zip(keys, tup)} for tup in tuples]
    return text, None, items, [], {}


ODIE_PEOPLE_ASKS = [  # (instruction, header); the columns asked for decide the gold table
    ("List every person in the text with their job.", ["Name", "Job"]),
    ("Make a table of the people mentioned and what they do for a living.", ["Person", "Occupation"]),
    ("Which city is each person from? Answer with a table.", ["Name", "City"]),
    ("Tabulate the people in the text and their cities.", ["Person", "City"]),
    ("Extract each person's name, job and city into a table.", ["Name", "Job", "City"]),
    ("Build a table with one row per person: name, occupation and home city.", ["Name", "Occupation", "Home city"]),
]
ODIE_PEOPLE_SAYS = ["{n} is {j} from {c}.", "{n} works as {j} in {c}.", "Born in {c}, {n} is now {j}.",
                    "{n}, {j}, lives in {c}."]  # {j} = job with its article
ODIE_PRODUCT_ASKS = [
    ("List the products in the text and their prices.", ["Product", "Price"]),
    ("Who makes each product? Put the answer in a table.", ["Product", "Maker"]),
    ("Summarise the products with their maker and price in a table.", ["Product", "Maker", "Price"]),
    ("Make a table of each device and its battery life.", ["Device", "Battery life"]),
    ("Compare the devices: maker, price and battery life.", ["Device", "Maker", "Price", "Battery life"]),
]


def odie_example(name: str, rng: random.Random):
    """InstructIE-like on-demand IE: a few sentences, an instruction naming the columns, a gold markdown table."""
    n_rows = rng.randint(2, 4)
    sentences, rows = [], []
    if name == "syn_odie_people":
        ask, header = rng.choice(ODIE_PEOPLE_ASKS)
        if getattr(rng, "names", "lexicon") == "generated":
            names = list(dict.fromkeys(GENERATED_LEX["PER"](rng) for _ in range(n_rows)))
        else:
            names = rng.sample([f"{f} {l}" for f in FIRST for l in LAST], n_rows)
        for person in names:
            job, city = rng.choice(JOB), rng.choice(CITY)
            sentences.append(rng.choice(ODIE_PEOPLE_SAYS).format(n=person, j=_a(job), c=city))
            cells = {"Name": person, "Person": person, "Job": job, "Occupation": job, "City": city, "Home city": city}
            rows.append([cells[h] for h in header])
        if rng.random() < 0.5:
            sentences.insert(rng.randrange(len(sentences) + 1), f"The weather in {rng.choice(CITY)} was mild.")
    else:
        ask, header = rng.choice(ODIE_PRODUCT_ASKS)
        generated = getattr(rng, "names", "lexicon") == "generated"
        products = ([GENERATED_LEX[rng.choice(["PHONE", "CAR"])](rng) for _ in range(n_rows)] if generated
                    else rng.sample(PHONE + CAR, n_rows))
        for product in dict.fromkeys(products):
            maker, price = (GENERATED_LEX["ORG"](rng) if generated else _org(rng)), f"{rng.choice([199, 249, 299, 349, 499, 650, 899])} dollars"
            hours = rng.choice([None, "12", "18", "24", "36"])
            if hours is None:
                sentences.append(rng.choice(["The {p}, made by {m}, costs {c}.", "{m} sells the {p} for {c}."])
                                 .format(p=product, m=maker, c=price))
            else:
                sentences.append(rng.choice(["The {p} from {m} costs {c} and its battery lasts {h} hours.",
                                             "The {p} by {m} sells for {c}; the battery runs for {h} hours."])
                                 .format(p=product, m=maker, c=price, h=hours))
            cells = {"Product": product, "Device": product, "Maker": maker, "Price": price,
                     "Battery life": f"{hours} hours" if hours else "N/A"}
            rows.append([cells[h] for h in header])
    return " ".join(sentences), {"instruction": ask}, [{"header": header, "rows": rows}], [], {}


EXAMPLE_FN = {"NER": ner_example, "RE": re_example, "RC": rc_example, "ED": event_example, "EAE": event_example,
              "EE": event_example, "OpenIE": openie_example, "ODIE": odie_example}


def generate_dataset(name: str, split: str, n: int, seed: int = 0, exclude_texts: set[str] | frozenset = frozenset(),
                     names: str = "lexicon") -> list[dict]:
    """`n` unified records of synthetic data set `name`; texts in `exclude_texts` (the train split's) are skipped,
    and no (text, query) pair repeats. names: "lexicon" (the small name lists) or "generated" (random pseudo-word
    names from the split's own random stream, so held-out names are unseen: see GENERATED_LEX)."""
    task = DATASETS[name]
    fn = {"syn_story_ere": ere_story_example, "syn_pair_ere": ere_pair_example}.get(name) or EXAMPLE_FN[task]
    rng = NamedRandom(f"adelie-synthetic/{seed}/{name}/{split}", names)
    records, seen = [], set()
    for _ in range(100 * n + 1000):  # the generators have far more distinct outputs than any n we ask for
        if len(records) == n:
            break
        text, query, items, labels, meta = fn(name, rng)
        key = (text, json.dumps(query, sort_keys=True))
        if text in exclude_texts or key in seen:
            continue
        seen.add(key)
        idx = len(records)
        records.append({"dataset": name, "split": split, "id": f"{name}/{split}/{idx}", "task": task, "text": text,
                        "labels": list(labels), "query": query, "items": items, "meta": meta})
    if len(records) < n:
        raise ValueError(f"synthetic data set {name} ({split}) ran out of distinct sentences at {len(records)} < {n}")
    return records


def generate_corpus(seed: int = 0, n_train: int = 1000, n_test: int = 100, datasets: list[str] | None = None,
                    names: str = "lexicon") -> dict[str, list[dict]]:
    """{"train": records, "test": records} for every synthetic data set (or the given ones); test texts are
    never train texts. names: see generate_dataset."""
    out: dict[str, list[dict]] = {"train": [], "test": []}
    for name in datasets or list(DATASETS):
        train = generate_dataset(name, "train", n_train, seed, names=names)
        out["train"] += train
        out["test"] += generate_dataset(name, "test", n_test, seed, exclude_texts={r["text"] for r in train},
                                        names=names)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Synthetic general chat: the stand-in for TULU v2 (paper section 4) when no general-data file is given.

def _general_turn(rng: random.Random) -> tuple[str, str]:
    """One (question, exact answer) pair from a small family of general tasks."""
    kind = rng.randrange(10)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        question = rng.choice([f"What is {a} + {b}?", f"Add {a} and {b}.", f"Compute {a} plus {b}."])
        return question, f"{a} + {b} = {a + b}."
    if kind == 1:
        a, b = sorted((rng.randint(2, 99), rng.randint(2, 99)), reverse=True)
        return rng.choice([f"What is {a} - {b}?", f"Subtract {b} from {a}."]), f"{a} - {b} = {a - b}."
    if kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return rng.choice([f"What is {a} times {b}?", f"Multiply {a} by {b}."]), f"{a} x {b} = {a * b}."
    if kind == 3:
        w = rng.choice(THINGS)
        question = rng.choice([f"Reverse the word '{w}'.", f"Spell '{w}' backwards."])
        return question, f"The word '{w}' reversed is '{w[::-1]}'."
    if kind == 4:
        w = " ".join(rng.sample(THINGS, rng.randint(1, 3)))
        return rng.choice([f"Write '{w}' in capital letters.", f"Convert to upper case: {w}"]), w.upper()
    if kind == 5:
        w = rng.choice(THINGS)
        return f"How many letters are in the word '{w}'?", f"The word '{w}' has {len(w)} letters."
    if kind == 6:
        xs = rng.sample(range(1, 60), rng.randint(3, 6))
        joined = ", ".join(map(str, xs))
        return rng.choice([f"Sort these numbers from smallest to largest: {joined}.",
                           f"Put in ascending order: {joined}"]), ", ".join(map(str, sorted(xs)))
    if kind == 7:
        xs = rng.sample(range(1, 99), rng.randint(3, 6))
        joined = ", ".join(map(str, xs))
        big = rng.random() < 0.5
        q = f"Which is the {'largest' if big else 'smallest'} number: {joined}?"
        return q, f"The {'largest' if big else 'smallest'} number is {max(xs) if big else min(xs)}."
    if kind == 8:
        xs = rng.sample(FRUITS, rng.randint(3, 5))
        pos = rng.choice(["first", "last"])
        return f"What is the {pos} item in this list: {', '.join(xs)}?", xs[0] if pos == "first" else xs[-1]
    xs = rng.sample(FRUITS, rng.randint(2, 6))
    return f"How many items are in this list: {', '.join(xs)}?", f"There are {len(xs)} items."


def generate_general(n: int, seed: int = 0) -> list[dict]:
    """`n` general chat conversations `{"dataset","id","messages"}`: single-turn, some multi-turn (two to three
    exchanges), some with a system prompt."""
    rng = random.Random(f"adelie-synthetic/{seed}/general")
    out = []
    for i in range(n):
        messages = []
        if rng.random() < 0.1:
            messages.append({"role": "system", "content": "You are a helpful assistant."})
        for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
            q, a = _general_turn(rng)
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append({"dataset": "syn_general", "id": f"syn_general/{i}", "messages": messages})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Copy warm-up: the demo's stand-in for what LLaMA-2 brings from pretraining. A model from random weights cannot
# copy a span of its input into its answer, and learning that from IE answers alone takes more CPU time than the
# demo has; a short stage that trains on passages written twice (the second copy is the trained answer) teaches it
# in-context copying (the "induction heads" of pretrained transformers) first. Half the passages are random strings,
# which only copying predicts; on corpus texts alone the model learned their templates and never copied (README).

def generate_copy_warmup(records: list[dict], n: int, seed: int = 0, min_texts: int = 1, max_texts: int = 1,
                         tokenizer: str | Path | None = None, min_pieces: int = 6, max_pieces: int = 24) -> list[dict]:
    """`n` conversations {"dataset","id","messages"}: the user turn is a passage, the assistant turn the same passage
    again (trained on; data.py masks the user turn). Even-numbered passages are min_texts..max_texts random record
    texts: the corpus' language. Odd-numbered ones (with `tokenizer`, a sentencepiece model) are min_pieces..max_pieces
    random pieces of its vocabulary: a corpus sentence can be predicted from its template without looking back (a
    model trained on texts alone wrote new sentences, 0 of 40 exact repeats: README), a random string only by copying
    it, which is the in-context copying that extraction needs and that LLaMA-2 brings from pretraining."""
    if not records:
        raise ValueError("generate_copy_warmup: no records to take text from")
    rng = random.Random(f"adelie-synthetic/{seed}/copy-warmup")
    piece_ids = []
    if tokenizer is not None:
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer))
        piece_ids = [i for i in range(sp.get_piece_size()) if not sp.id_to_piece(i).startswith("<")]   # no <s>, bytes
    out = []
    for i in range(n):
        if piece_ids and i % 2:
            passage = sp.decode([rng.choice(piece_ids) for _ in range(rng.randint(min_pieces, max_pieces))]).strip()
        else:
            passage = " ".join(rng.choice(records)["text"] for _ in range(rng.randint(min_texts, max_texts)))
        out.append({"dataset": "syn_copy_warmup", "id": f"syn_copy_warmup/{i}",
                    "messages": [{"role": "user", "content": passage}, {"role": "assistant", "content": passage}]})
    return out


def main(argv: list[str] | None = None) -> None:
    from data import DEFAULT_TOKENIZER   # the embedded default's tokenizer (data.py imports torch: only here)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory (train.jsonl, test.jsonl, general.jsonl)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--n_train", type=int, default=1000, help="train records per synthetic data set")
    parser.add_argument("--n_test", type=int, default=100, help="held-out test records per synthetic data set")
    parser.add_argument("--n_general", type=int, default=4000, help="general chat conversations")
    parser.add_argument("--names", default="lexicon", choices=NAMES,
                        help="proper names from the small lists (lexicon) or random pseudo-words, unseen in the "
                             "held-out split (generated: only copying the span from the text scores)")
    parser.add_argument("--n_warmup", type=int, default=0,
                        help="also write warmup.jsonl: this many copy warm-up conversations, half train texts and "
                             "half random strings of --warmup_tokenizer's pieces (the demo's stand-in for "
                             "pretraining, see generate_copy_warmup)")
    parser.add_argument("--warmup_tokenizer", default=str(DEFAULT_TOKENIZER),
                        help="sentencepiece model whose vocabulary the warm-up's random strings are drawn from (the "
                             "embedded default's); '' for train texts only")
    parser.add_argument("--datasets", default="", help="comma-separated synthetic data sets (default: all)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = generate_corpus(args.seed, args.n_train, args.n_test,
                             [d for d in args.datasets.split(",") if d] or None, args.names)
    corpus["general"] = generate_general(args.n_general, args.seed)
    if args.n_warmup:
        corpus["warmup"] = generate_copy_warmup(corpus["train"], args.n_warmup, args.seed,
                                                tokenizer=args.warmup_tokenizer or None)
    for split, records in corpus.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{out / f'{split}.jsonl'}: {len(records)} records")


if __name__ == "__main__":
    main()
